package auth

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// TokenSource supplies the bearer token a service presents on its outbound calls.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token.
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// FileToken reads the token from a file on every call, so a token that the
// deployment rotates on disk (a mounted secret) is picked up without a restart.
type FileToken string

// Token implements TokenSource.
func (f FileToken) Token(context.Context) (string, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return "", fmt.Errorf("read service token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SignerTokens mints tokens for one caller with a Signer the process holds, and
// reuses each until a quarter of its lifetime is left. The dev stack and the
// patient service (the issuer) use it for their own SERVICE calls.
type SignerTokens struct {
	signer *Signer
	caller Caller
	ttl    time.Duration

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewSignerTokens returns a TokenSource minting tokens for caller with lifetime ttl.
func NewSignerTokens(s *Signer, caller Caller, ttl time.Duration) *SignerTokens {
	return &SignerTokens{signer: s, caller: caller, ttl: ttl}
}

// Token implements TokenSource.
func (s *SignerTokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Until(s.expires) > s.ttl/4 {
		return s.token, nil
	}
	token, expires, err := s.signer.Sign(s.caller, s.ttl)
	if err != nil {
		return "", err
	}
	s.token, s.expires = token, expires
	return token, nil
}
