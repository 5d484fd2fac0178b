package auth

import (
	"slices"
	"sync"
	"time"
)

// verified remembers tokens that passed verification, so a client that sends the
// same token on every call pays for the Ed25519 check and JSON decoding once.
// Entries live until the token expires or for at most maxAge, whichever is first;
// maxAge bounds how long a token stays accepted after its key is withdrawn from
// the issuer's key set.
type verified struct {
	mu      sync.Mutex
	size    int
	maxAge  time.Duration
	entries map[string]cacheEntry
}

type cacheEntry struct {
	caller Caller
	until  time.Time
}

func newVerified(size int, maxAge time.Duration) *verified {
	return &verified{size: size, maxAge: maxAge, entries: make(map[string]cacheEntry, size)}
}

func (v *verified) get(token string, now time.Time) (Caller, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.entries[token]
	if !ok {
		return Caller{}, false
	}
	if !now.Before(e.until) {
		delete(v.entries, token)
		return Caller{}, false
	}
	c := e.caller
	c.Sites, c.Trials = slices.Clone(c.Sites), slices.Clone(c.Trials) // a handler may not change the cached entry
	return c, true
}

func (v *verified) put(token string, c Caller, expires, now time.Time) {
	until := now.Add(v.maxAge)
	if expires.Before(until) {
		until = expires
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.entries) >= v.size {
		for t, e := range v.entries {
			if !now.Before(e.until) {
				delete(v.entries, t)
			}
		}
		if len(v.entries) >= v.size {
			// Still full of live tokens: start over rather than track recency;
			// the cost is one signature check per token, once.
			clear(v.entries)
		}
	}
	c.Sites, c.Trials = slices.Clone(c.Sites), slices.Clone(c.Trials)
	v.entries[token] = cacheEntry{caller: c, until: until}
}
