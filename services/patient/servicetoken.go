package patient

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// IssueServiceToken is the client-credentials exchange: a configured service
// and one of its (at most two) secrets give a SERVICE access token naming the
// service. Only SHA-256 hashes of the secrets are held.
func (s *Service) IssueServiceToken(ctx context.Context, req *patientv1.IssueServiceTokenRequest) (*patientv1.IssueServiceTokenResponse, error) {
	name := req.GetServiceName()
	if err := s.admit(ctx, "service-token", s.cfg.LockoutAfter*10, name); err != nil {
		s.serviceAudit(ctx, "SERVICE_TOKEN_DENIED", name, "throttled")
		return nil, err
	}
	got := sha256.Sum256([]byte(req.GetClientSecret()))
	ok := 0
	for _, want := range s.cfg.ServiceSecrets[name] {
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if ok != 1 {
		s.serviceAudit(ctx, "SERVICE_TOKEN_DENIED", name, "credentials not accepted")
		return nil, connect.NewError(connect.CodeUnauthenticated, "the service credentials were not accepted")
	}
	token, exp, _, err := s.keys.Sign(auth.Caller{Subject: name, Role: serviceRole}, s.cfg.AccessTTL)
	if err != nil {
		return nil, errorf(connect.CodeUnavailable, "no signing key")
	}
	if err := s.serviceAudit(ctx, "SERVICE_TOKEN_ISSUED", name, ""); err != nil {
		return nil, db.ConnectError(err, "service token")
	}
	return &patientv1.IssueServiceTokenResponse{AccessToken: token, TokenType: "Bearer", AccessTokenExpiresAt: timestamppb.New(exp),
		AccessTokenTtlSeconds: int32(exp.Sub(s.now()).Seconds()), ServiceName: name}, nil
}

func (s *Service) serviceAudit(ctx context.Context, action, name, why string) error {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, _ *ent.Client) error {
		actor := audit.Actor{Kind: audit.ActorAnonymous}
		if action == "SERVICE_TOKEN_ISSUED" {
			actor = audit.Actor{ID: name, Role: serviceRole.String(), Kind: audit.ActorService}
		}
		_, err := s.audit.Append(ctx, tx, audit.Event{Actor: actor, Action: action, RecordType: "SERVICE_IDENTITY", RecordID: name, Reason: why})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record a service token event", "error", err.Error())
	}
	return err
}
