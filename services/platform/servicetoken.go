package platform

import (
	"context"
	"fmt"
	"sync"
	"time"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// ServiceTokens is a service's SERVICE token source: it exchanges the service's
// name and client secret with the patient service (AuthService/IssueServiceToken,
// the client-credentials exchange) and reuses each token until a quarter of its
// lifetime is left. A secret is rotated without downtime by configuring the new
// one in the patient service beside the old, then here.
type ServiceTokens struct {
	auth    patientv1connect.AuthServiceClient
	service string
	secret  auth.TokenSource

	mu      sync.Mutex
	token   string
	renewAt time.Time
	expires time.Time
}

// NewServiceTokens returns the token source of service, obtaining tokens from the
// patient service at issuer (its dependency settings: timeout, retries, breaker).
// secret supplies the client secret at each exchange: auth.StaticToken, or
// auth.FileToken, re-read each time, so a rotated mounted secret is picked up.
func NewServiceTokens(issuer client.Dependency, service string, secret auth.TokenSource, opts ...client.Option) *ServiceTokens {
	return &ServiceTokens{
		auth:    patientv1connect.NewAuthServiceClient(client.New(issuer, opts...)),
		service: service,
		secret:  secret,
	}
}

// Token implements auth.TokenSource.
func (s *ServiceTokens) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.renewAt) {
		return s.token, nil
	}
	secret, err := s.secret.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("service secret for %s: %w", s.service, err)
	}
	res, err := s.auth.IssueServiceToken(ctx, &patientv1.IssueServiceTokenRequest{ServiceName: s.service, ClientSecret: secret})
	if err != nil {
		// While the issuer is unreachable, a token that has not expired still
		// serves: renewing early is a convenience, not a requirement.
		if s.token != "" && time.Now().Before(s.expires) {
			return s.token, nil
		}
		return "", fmt.Errorf("service token for %s: %w", s.service, err)
	}
	ttl := time.Duration(res.GetAccessTokenTtlSeconds()) * time.Second
	now := time.Now()
	s.token, s.renewAt, s.expires = res.GetAccessToken(), now.Add(ttl*3/4), now.Add(ttl)
	return s.token, nil
}

var _ auth.TokenSource = (*ServiceTokens)(nil)
