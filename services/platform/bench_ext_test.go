package platform_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// BenchmarkUnaryCall measures one authenticated, authorized and validated unary
// call through the whole chain over loopback, per protocol. Compare the protocols
// with each other within one run (ratios), not across machines.
func BenchmarkUnaryCall(b *testing.B) {
	f := newFixture(b)
	token := f.token(authzv1.Role_ROLE_SERVICE, "epro")
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	grpcHTTP := &http.Client{Transport: &http.Transport{Protocols: h2c}}
	for _, tc := range []struct {
		name   string
		client *http.Client
		opts   []connecthttp.Option
	}{
		{"connect-json", http.DefaultClient, []connecthttp.Option{connecthttp.WithProtoJSON()}},
		{"connect-proto", http.DefaultClient, nil},
		{"grpc-web", http.DefaultClient, []connecthttp.Option{connecthttp.WithGRPCWeb()}},
		{"grpc-h2c", grpcHTTP, []connecthttp.Option{connecthttp.WithGRPC()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := patientv1connect.NewPatientServiceClient(connect.NewClient(
				connecthttp.NewTransport(tc.client, f.url, tc.opts...), withToken(token)))
			req := &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.GetSubjectStatus(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyToken is the per-request cost of authentication: a token seen
// before (the common case: a client reuses its token) against one verified afresh.
func BenchmarkVerifyToken(b *testing.B) {
	key, _ := auth.NewKey()
	signer := auth.NewSigner(key, issuer)
	tok, _, _ := signer.Sign(auth.Caller{Subject: "epro", Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []auth.VerifierOption
	}{
		{"cached", nil},
		{"uncached", []auth.VerifierOption{auth.WithCache(0)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			verifier := auth.NewVerifier(auth.StaticKeys{signer.PublicKey()}, issuer, tc.opts...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := verifier.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
