// Package auth issues and verifies TrialHub access tokens: short-lived JWTs signed
// with Ed25519 (EdDSA), published as a JWKS with a key id (kid) per key so keys can
// rotate without restarts. The patient service signs; every other service only
// verifies. No symmetric secret is ever shared between services.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// Audience is the audience of every TrialHub access token: the TrialHub API.
const Audience = "trialhub-api"

// ErrInvalidToken is returned by Verifier.Verify for any token it rejects. The
// reason is wrapped for local logs; callers should not tell clients which it was.
var ErrInvalidToken = errors.New("invalid token")

// Claims are the JWT claims of a TrialHub access token.
type Claims struct {
	jwt.RegisteredClaims
	// Role is the authz role name without its prefix: "PATIENT", "ADMIN", ...
	Role string `json:"role"`
	// Sites are the site ids an investigator is scoped to.
	Sites []string `json:"sites,omitempty"`
}

// RoleName is the claim form of a role: ROLE_ANALYST becomes "ANALYST".
func RoleName(r authzv1.Role) string {
	return strings.TrimPrefix(r.String(), "ROLE_")
}

// ParseRole is the inverse of RoleName; it accepts any letter case.
func ParseRole(name string) (authzv1.Role, error) {
	v, ok := authzv1.Role_value["ROLE_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown role %q", name)
	}
	return authzv1.Role(v), nil
}

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

// Signer issues access tokens. It is safe for concurrent use.
type Signer struct {
	key    Key
	issuer string
	now    func() time.Time
}

// NewSigner returns a Signer that signs with key as issuer.
func NewSigner(key Key, issuer string) *Signer {
	return &Signer{key: key, issuer: issuer, now: time.Now}
}

// Issuer is the iss claim of the tokens the signer issues.
func (s *Signer) Issuer() string { return s.issuer }

// PublicKey is the key verifiers need for this signer's tokens.
func (s *Signer) PublicKey() PublicKey { return s.key.Public() }

// Sign issues a token for the caller that expires after ttl.
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
		Role:  RoleName(c.Role),
		Sites: c.Sites,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = s.key.ID
	token, err = t.SignedString(s.key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return token, expires, nil
}

// KeySource looks up a verification key by its key id.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Verifier checks access tokens: EdDSA only, a known kid, the expected issuer and
// audience, and exp/nbf/iat within a small clock-skew leeway.
type Verifier struct {
	keys   KeySource
	issuer string
	leeway time.Duration
	now    func() time.Time
	cache  *verified
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithLeeway sets the clock skew tolerated on exp, nbf and iat. Default 30s.
func WithLeeway(d time.Duration) VerifierOption { return func(v *Verifier) { v.leeway = d } }

// WithCache sets how many verified tokens are remembered, each until it expires
// and for at most a minute, so that a client sending the same token on every call
// is verified once. Default 10000; 0 turns the cache off.
func WithCache(size int) VerifierOption {
	return func(v *Verifier) {
		v.cache = nil
		if size > 0 {
			v.cache = newVerified(size, time.Minute)
		}
	}
}

// WithClock sets the time source, for tests. Default time.Now.
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier for tokens issued by issuer with keys from keys.
func NewVerifier(keys KeySource, issuer string, opts ...VerifierOption) *Verifier {
	v := &Verifier{keys: keys, issuer: issuer, leeway: 30 * time.Second, now: time.Now, cache: newVerified(10000, time.Minute)}
	for _, o := range opts {
		o(v)
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
	if role == authzv1.Role_ROLE_INVESTIGATOR {
		c.Sites = claims.Sites
	}
	if v.cache != nil {
		v.cache.put(token, c, claims.ExpiresAt.Time, now)
	}
	return c, nil
}
