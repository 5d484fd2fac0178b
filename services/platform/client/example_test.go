package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// A service builds one client per dependency at start and shares it: the breaker
// and the retry budget belong to the client.
func ExampleNew() {
	// The SERVICE token the deployment mounts and rotates on disk.
	tokens := auth.FileToken("/var/run/secrets/trialhub/token")
	patients := patientv1connect.NewPatientServiceClient(
		client.New(client.Service("patient", "http://patient:8080"), client.WithTokens(tokens)))

	// Safe to retry (NO_SIDE_EFFECTS): a 503 from the load balancer is retried
	// within the 2s the dependency allows.
	status, err := patients.GetSubjectStatus(context.Background(),
		&patientv1.GetSubjectStatusRequest{SubjectUuid: "0f8e3a55-5f1c-4b8e-9d0a-3c1b2a4d5e6f"})
	if err != nil {
		log.Printf("patient service: %v", err) // UNAVAILABLE while its breaker is open
		return
	}
	fmt.Println(status.GetExists())
}

// A dependency is tuned field by field; zero fields keep their defaults.
func ExampleDependency() {
	dep := client.Vendor("push-vendor", "https://push.example.com")
	dep.Protocol = client.ProtocolConnect // the vendor does not speak gRPC
	dep.MaxAttempts = 2
	dep.Breaker = client.Breaker{OpenFor: 30 * time.Second}
	_ = client.New(dep, client.WithTokens(auth.StaticToken("vendor-api-key")))
}

// A vendor that does not speak Connect gets a plain *http.Client with the same
// timeout, safe retries and breaker.
func ExampleHTTP() {
	dep := client.Vendor("sms-vendor", "https://sms.example.com")
	sms := client.HTTP(dep, client.WithTokens(auth.StaticToken("vendor-api-key")))

	req, err := http.NewRequest(http.MethodPost, dep.BaseURL+"/v1/messages",
		strings.NewReader(`{"to":"+4915112345678","text":"Your code is 123456"}`))
	if err != nil {
		log.Fatal(err)
	}
	// A POST is sent once unless it carries an Idempotency-Key the vendor honours.
	req.Header.Set("Idempotency-Key", "activation-0f8e3a55")
	res, err := sms.Do(req)
	if errors.Is(err, client.ErrOpen) {
		log.Print("sms vendor is failing; the outbox job will retry later")
		return
	}
	if err != nil {
		log.Printf("sms vendor: %v", err)
		return
	}
	defer res.Body.Close()
	fmt.Println(res.Status)
}

func ExampleService() {
	fmt.Println(client.Service("trial", "http://trial:8080").Timeout)
	// Output: 2s
}

func ExampleVendor() {
	fmt.Println(client.Vendor("push-vendor", "https://push.example.com").Timeout)
	// Output: 500ms
}
