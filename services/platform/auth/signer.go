package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// Key is an Ed25519 signing key with its key id.
type Key struct {
	ID      string
	Private ed25519.PrivateKey
}

// Public returns the key's public half, as published in the JWKS.
func (k Key) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Private.Public().(ed25519.PublicKey)}
}

// NewKey generates a fresh signing key whose id is its RFC 7638 thumbprint.
func NewKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return Key{ID: Thumbprint(priv.Public().(ed25519.PublicKey)), Private: priv}, nil
}

// keepPrevious is how many previous keys Rotate keeps published.
const keepPrevious = 2

// Signer issues access tokens with its current key and publishes that key and
// the previous ones, so tokens signed before a rotation keep verifying until they
// expire: keys rotate without logging anyone out. It is safe for concurrent use.
type Signer struct {
	issuer string
	now    func() time.Time

	mu       sync.RWMutex
	current  Key
	previous []PublicKey // newest first
}

// NewSigner returns a Signer that signs with key as issuer. previous are the public
// halves of keys it signed with before (newest first), published beside key so
// their unexpired tokens still verify, for instance across a restart that brought
// a new key; a process never needs their private halves.
func NewSigner(key Key, issuer string, previous ...PublicKey) *Signer {
	return &Signer{current: key, issuer: issuer, now: time.Now, previous: previous}
}

// PublicKey is the public half of the current key, the one new tokens carry.
func (s *Signer) PublicKey() PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current.Public()
}

// Rotate makes next the signing key. The key it replaces stays published, with
// the one before it: Rotate keeps the two most recent previous keys and drops
// older ones, so rotate at intervals longer than the longest token lifetime.
func (s *Signer) Rotate(next Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := append([]PublicKey{s.current.Public()}, s.previous...)
	s.previous = prev[:min(len(prev), keepPrevious)]
	s.current = next
}

// publicKeys returns the current key then the previous ones, newest first.
func (s *Signer) publicKeys() []PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]PublicKey{s.current.Public()}, s.previous...)
}

// JWKS is the key set the issuer publishes: the current key, then the previous ones.
func (s *Signer) JWKS() JWKS {
	keys := s.publicKeys()
	set := JWKS{Keys: make([]JWK, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k.ToJWK()
	}
	return set
}

// Keys is a KeySource of the signer's published keys that follows Rotate, for a
// process that verifies its own tokens.
func (s *Signer) Keys() KeySource { return signerKeys{s} }

type signerKeys struct{ s *Signer }

func (k signerKeys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	return StaticKeys(k.s.publicKeys()).PublicKey(ctx, kid)
}

// Sign issues an access token (typ at+jwt) for the caller that expires after ttl,
// signed with the current key and naming it in kid.
func (s *Signer) Sign(c Caller, ttl time.Duration) (token string, expires time.Time, err error) {
	if c.Subject == "" || c.Role == authzv1.Role_ROLE_UNSPECIFIED {
		return "", time.Time{}, errors.New("sign token: subject and role are required")
	}
	now := s.now().UTC().Truncate(time.Second)
	expires = now.Add(ttl)
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   c.Subject,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(expires),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(id),
		},
		Role:   RoleName(c.Role),
		Sites:  c.Sites,
		Trials: c.Trials,
	}
	s.mu.RLock()
	key := s.current
	s.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["typ"] = TokenType
	t.Header["kid"] = key.ID
	token, err = t.SignedString(key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return token, expires, nil
}
