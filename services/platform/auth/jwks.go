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
	return nil, fmt.Errorf("unknown kid %q", kid)
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

// RemoteKeys caches the issuer's keys and refreshes them: after MaxAge, and when a
// token names a kid it has not seen (a rotation), at most once per MinRefresh so a
// flood of tokens with made-up kids cannot hammer the issuer.
type RemoteKeys struct {
	fetch      FetchFunc
	maxAge     time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

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
	defer r.mu.Unlock()
	now := r.now()
	key, known := r.keys[kid]
	stale := now.Sub(r.fetched) > r.maxAge
	if known && !stale {
		return key, nil
	}
	if r.fetched.IsZero() || stale || now.Sub(r.fetched) >= r.minRefresh {
		keys, err := r.fetch(ctx)
		if err == nil {
			r.keys = make(map[string]ed25519.PublicKey, len(keys))
			for _, k := range keys {
				r.keys[k.ID] = k.Key
			}
			r.fetched = now
		} else if !known {
			return nil, err
		}
		// A failed refresh keeps serving known keys: the issuer being briefly down
		// must not log everybody out.
		key, known = r.keys[kid]
	}
	if !known {
		return nil, errors.New("unknown kid")
	}
	return key, nil
}
