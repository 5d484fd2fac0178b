package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// PublicKey is a verification key with its key id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// JWK is one key of a JSON Web Key Set (RFC 7517), in the OKP/Ed25519 form of RFC 8037.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 key, used as its kid.
func Thumbprint(k ed25519.PublicKey) string {
	// Members in lexicographic order, no white space, as RFC 7638 section 3 requires.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(k) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ToJWK returns the key in JWK form.
func (k PublicKey) ToJWK() JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Key), Kid: k.ID, Alg: "EdDSA", Use: "sig"}
}

// ParseJWKS reads the Ed25519 signing keys of a JWKS document, skipping keys of
// other types.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	var keys []PublicKey
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("parse jwks: key %q: bad x", k.Kid)
		}
		keys = append(keys, PublicKey{ID: k.Kid, Key: ed25519.PublicKey(x)})
	}
	return keys, nil
}

// StaticKeys is a fixed key set, for a process that holds the signer itself.
type StaticKeys []PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	for _, k := range s {
		if k.ID == kid {
			return k.Key, nil
		}
	}
	return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
}

// FetchFunc loads the issuer's current public keys.
type FetchFunc func(ctx context.Context) ([]PublicKey, error)

// FetchJWKS returns a FetchFunc that GETs a JWKS document from url. A nil client
// means one with a 5 s timeout.
func FetchJWKS(client *http.Client, url string) FetchFunc {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return func(ctx context.Context) ([]PublicKey, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: %w", err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetch jwks: %s", res.Status)
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("fetch jwks: %w", err)
		}
		return ParseJWKS(body)
	}
}

// RemoteKeys caches the issuer's keys and refreshes them: after maxAge, and when a
// token names a kid it has not seen (a rotation). Every fetch, failed or not, is
// at most one per minRefresh, so neither a flood of tokens with made-up kids nor an
// issuer that is down can make it hammer the issuer. One fetch runs at a time and
// every look-up that needs it shares it (single flight); it runs on a context
// detached from the request that started it, bounded by fetchTimeout, so a
// cancelled request neither aborts it for the others nor holds anyone up: a
// look-up waits only as long as its own context allows. A known kid is answered
// at once, from a stale set too (refreshing it in the background): the issuer
// being down must not log everybody out. A key leaves the set only when a
// successful fetch no longer lists it.
//
// It is written by hand rather than with lestrrat-go/jwx/v3's jwk.Cache: the kit
// verifies with golang-jwt and needs Ed25519 only, and jwx's cache (httprc) would
// add a second JOSE library and a background refresher whose failure and rate
// limits we would have to configure and test to get the same three rules
// (minRefresh on every attempt, single flight, stale keys while down).
type RemoteKeys struct {
	fetch      FetchFunc
	maxAge     time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	fetched   time.Time     // start of the last successful fetch
	attempted time.Time     // start of the last fetch, successful or not
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
	err       error         // the last fetch's error, nil after a success
}

// fetchTimeout bounds a fetch, which no request's context does.
const fetchTimeout = 10 * time.Second

// errUnknownKid is wrapped by every error for a kid the key set does not hold.
var errUnknownKid = errors.New("unknown kid")

// NewRemoteKeys returns a cached key source over fetch. maxAge defaults to 10
// minutes and minRefresh to 10 seconds when zero.
func NewRemoteKeys(fetch FetchFunc, maxAge, minRefresh time.Duration) *RemoteKeys {
	if maxAge == 0 {
		maxAge = 10 * time.Minute
	}
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	return &RemoteKeys{fetch: fetch, maxAge: maxAge, minRefresh: minRefresh, now: time.Now}
}

// PublicKey implements KeySource.
func (r *RemoteKeys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	r.mu.Lock()
	now := r.now()
	key, known := r.keys[kid]
	if known && now.Sub(r.fetched) <= r.maxAge {
		r.mu.Unlock()
		return key, nil
	}
	done := r.refreshLocked(ctx, now)
	r.mu.Unlock()
	if known {
		return key, nil // stale: answered now, refreshed in the background
	}
	if done == nil {
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("look up kid %q: %w", kid, ctx.Err())
	}
	r.mu.Lock()
	key, known = r.keys[kid]
	err := r.err
	r.mu.Unlock()
	switch {
	case known:
		return key, nil
	case err != nil:
		return nil, fmt.Errorf("%w %q: %w", errUnknownKid, kid, err)
	default:
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
}

// refreshLocked starts a fetch unless one runs or the last began less than
// minRefresh ago, and returns the channel closed when the running fetch ends
// (nil when none runs). r.mu must be held.
func (r *RemoteKeys) refreshLocked(ctx context.Context, now time.Time) <-chan struct{} {
	if r.inflight != nil {
		return r.inflight
	}
	if !r.attempted.IsZero() && now.Sub(r.attempted) < r.minRefresh {
		return nil
	}
	r.attempted = now
	done := make(chan struct{})
	r.inflight = done
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	go func() {
		defer cancel()
		keys, err := r.fetch(fctx)
		r.mu.Lock()
		if err == nil {
			r.keys = make(map[string]ed25519.PublicKey, len(keys))
			for _, k := range keys {
				r.keys[k.ID] = k.Key
			}
			r.fetched = now
		}
		r.err = err
		r.inflight = nil
		r.mu.Unlock()
		close(done)
	}()
	return done
}
