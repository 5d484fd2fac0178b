package auth

import (
	"slices"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// verified remembers tokens that passed verification, so a client that sends the
// same token on every call pays for the Ed25519 check and JSON decoding once.
// Entries live until the token expires or for at most maxAge, whichever is first;
// maxAge bounds how long a token stays accepted after its key is withdrawn from
// the issuer's key set. When full it drops the least recently used token.
//
// The LRU (golang-lru/v2 expirable) evicts by recency and frees entries older
// than maxAge by wall time; each entry also carries its own deadline, checked
// against the Verifier's clock, because a token's exp can come before maxAge.
// Its cleanup goroutine lives as long as the process (the library cannot stop
// it), one per Verifier with a cache: make Verifiers once, not per request.
type verified struct {
	maxAge  time.Duration
	entries *expirable.LRU[string, cacheEntry]
}

type cacheEntry struct {
	caller Caller
	until  time.Time
}

func newVerified(size int, maxAge time.Duration) *verified {
	return &verified{maxAge: maxAge, entries: expirable.NewLRU[string, cacheEntry](size, nil, maxAge)}
}

func (v *verified) get(token string, now time.Time) (Caller, bool) {
	e, ok := v.entries.Get(token)
	if !ok {
		return Caller{}, false
	}
	if !now.Before(e.until) {
		v.entries.Remove(token)
		return Caller{}, false
	}
	return e.caller.clone(), true // a handler may not change the cached entry
}

func (v *verified) put(token string, c Caller, expires, now time.Time) {
	until := now.Add(v.maxAge)
	if expires.Before(until) {
		until = expires
	}
	v.entries.Add(token, cacheEntry{caller: c.clone(), until: until})
}

func (c Caller) clone() Caller {
	c.Sites, c.Trials = slices.Clone(c.Sites), slices.Clone(c.Trials)
	return c
}
