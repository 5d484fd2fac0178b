package platform_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connectinprocess"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// A service's main: verify tokens with the issuer's published keys, register the
// generated handlers, and serve gRPC, gRPC-Web and Connect on one port until
// SIGINT or SIGTERM, draining in-flight calls.
func ExampleNewServer() {
	keys := auth.NewRemoteKeys(auth.FetchJWKS(nil, "http://patient:8080/.well-known/jwks.json"), 0, 0)
	shed := func(next http.Handler) http.Handler { return next } // e.g. a load shedder
	srv := platform.NewServer("patient",
		platform.WithVerifier(auth.NewVerifier(keys, "https://patient.trialhub.example")),
		platform.WithCORSOrigins("https://app.trialhub.example"),
		platform.WithMiddleware(shed),                           // before CORS and authentication
		platform.WithUnaryTimeouts(10*time.Second, time.Minute), // default and maximum deadline
	)
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), patientv1connect.UnimplementedPatientServiceHandler{})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.ListenAndServe(ctx, ":8080"); err != nil {
		log.Fatal(err)
	}
}

// In-process calls (a seed, the dev stack) run the whole chain, with each method's
// authorization rule, before the server is ever served.
func ExampleServer_RPC() {
	srv := platform.NewServer("patient", platform.WithLogger(slog.New(slog.DiscardHandler)))
	health := connect.NewClient(connectinprocess.New(srv.RPC()))
	var res healthv1.HealthCheckResponse
	err := health.CallUnary(context.Background(), connect.Spec{
		Procedure: "/grpc.health.v1.Health/Check",
		Schema:    healthv1.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check"),
	}, &healthv1.HealthCheckRequest{}, &res)
	fmt.Println(res.GetStatus(), err)

	// Patient methods need a token: without one the chain refuses the call.
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), patientv1connect.UnimplementedPatientServiceHandler{})
	patients := patientv1connect.NewPatientServiceClient(connect.NewClient(connectinprocess.New(srv.RPC())))
	_, err = patients.GetProfile(context.Background(), &patientv1.GetProfileRequest{})
	fmt.Println(connect.CodeOf(err))
	// Output:
	// SERVING <nil>
	// unauthenticated
}
