package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// KeySource looks up a verification key by its key id.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Verifier checks access tokens: typ at+jwt (TokenType), EdDSA only, a known kid,
// the expected issuer and audience, exp required, and exp/nbf/iat within a small
// clock-skew leeway.
type Verifier struct {
	keys   KeySource
	issuer string
	leeway time.Duration
	now    func() time.Time

	cacheSize int
	cache     *verified // nil when off
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithLeeway sets the clock skew tolerated on exp, nbf and iat. Default 30s.
func WithLeeway(d time.Duration) VerifierOption { return func(v *Verifier) { v.leeway = d } }

// WithCache sets how many verified tokens are remembered, each until it expires
// and for at most a minute, so that a client sending the same token on every call
// is verified once. Default 10000; 0 turns the cache off.
func WithCache(size int) VerifierOption {
	return func(v *Verifier) { v.cacheSize = size }
}

// WithClock sets the time source, for tests. Default time.Now.
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier for tokens issued by issuer with keys from keys.
func NewVerifier(keys KeySource, issuer string, opts ...VerifierOption) *Verifier {
	v := &Verifier{keys: keys, issuer: issuer, leeway: 30 * time.Second, now: time.Now, cacheSize: 10000}
	for _, o := range opts {
		o(v)
	}
	if v.cacheSize > 0 { // built once, after the options: each cache owns a goroutine
		v.cache = newVerified(v.cacheSize, time.Minute)
	}
	return v
}

// Verify returns the caller a token speaks for, or an error wrapping ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (Caller, error) {
	now := v.now()
	if v.cache != nil {
		if c, ok := v.cache.get(token, now); ok {
			return c, nil
		}
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	var claims Claims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
			return nil, fmt.Errorf("typ %v, want %s", t.Header["typ"], TokenType)
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid")
		}
		return v.keys.PublicKey(ctx, kid)
	})
	if err != nil {
		return Caller{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	role, err := ParseRole(claims.Role)
	if err != nil || claims.Subject == "" {
		return Caller{}, fmt.Errorf("%w: bad role or subject", ErrInvalidToken)
	}
	c := Caller{Subject: claims.Subject, Role: role, TokenID: claims.ID}
	// Only the scopes the role has: a PATIENT token listing sites gains nothing.
	switch role {
	case authzv1.Role_ROLE_INVESTIGATOR:
		c.Sites, c.Trials = claims.Sites, claims.Trials
	case authzv1.Role_ROLE_ANALYST:
		c.Trials = claims.Trials
	}
	if v.cache != nil {
		v.cache.put(token, c, claims.ExpiresAt.Time, now)
	}
	return c, nil
}
