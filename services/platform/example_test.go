package platform_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// A service's main: verify tokens with the issuer's published keys, register the
// generated handlers, and serve gRPC, gRPC-Web and Connect on one port until
// SIGINT or SIGTERM, draining in-flight calls.
func ExampleNewServer() {
	keys := auth.NewRemoteKeys(auth.FetchJWKS(nil, "http://patient:8080/.well-known/jwks.json"), 0, 0)
	srv := platform.NewServer("patient",
		platform.WithVerifier(auth.NewVerifier(keys, "https://patient.trialhub.example")),
		platform.WithCORSOrigins("https://app.trialhub.example"),
	)
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), patientv1connect.UnimplementedPatientServiceHandler{})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.ListenAndServe(ctx, ":8080"); err != nil {
		log.Fatal(err)
	}
}
