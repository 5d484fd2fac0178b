package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect/v2"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// hung is what a hanging GetSubjectStatus saw: when it started and the deadline
// its context carried.
type hung struct {
	entered     time.Time
	deadline    time.Time
	hasDeadline bool
}

// hang makes GetSubjectStatus block until its context is done, or fail after 10s
// so that a call without a deadline fails the test rather than hanging it.
func hang(s *server) <-chan hung {
	seen := make(chan hung, 1)
	s.serveStatus(func(ctx context.Context, _ *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		got := hung{entered: time.Now()}
		got.deadline, got.hasDeadline = ctx.Deadline()
		seen <- got
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, connect.NewError(connect.CodeAborted, "no deadline came")
		}
	})
	return seen
}

type statusClient interface {
	GetSubjectStatus(context.Context, *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error)
}

// expectDeadline calls GetSubjectStatus on a hanging server and checks that the call
// ends in DEADLINE_EXCEEDED no earlier than want after the start (or the caller's
// deadline), and that the handler's context, whose deadline only the grpc-timeout
// header can have set, left it at most want.
func expectDeadline(t *testing.T, ctx context.Context, s *server, c statusClient, want time.Duration) {
	t.Helper()
	seen := hang(s)
	start := time.Now()
	_, err := c.GetSubjectStatus(ctx, statusRequest())
	end := time.Now()
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("call to a hanging server: %v, want deadline_exceeded", err)
	}
	// The server's deadline is derived from the call's, less at most the
	// microsecond grpc-timeout truncates; whichever expires first ends the call.
	deadline := start.Add(want)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if end.Before(deadline.Add(-time.Millisecond)) {
		t.Errorf("call failed %v before its deadline", deadline.Sub(end))
	}
	var got hung
	select {
	case got = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the handler")
	}
	if !got.hasDeadline {
		t.Fatal("handler context had no deadline: the timeout was not sent on the wire")
	}
	if left := got.deadline.Sub(got.entered); left > want {
		t.Errorf("handler had %v left, more than the call's %v", left, want)
	}
	if n := s.attempts(getStatus); n != 1 {
		t.Errorf("server saw %d attempts, want 1: no retry once the deadline is spent", n)
	}
}

func TestTimeoutHoldsWhenServerHangs(t *testing.T) {
	t.Run("dependency timeout", func(t *testing.T) {
		s := newServer(t)
		dep := s.dependency()
		dep.Timeout = 200 * time.Millisecond
		expectDeadline(t, t.Context(), s, s.patients(dep), dep.Timeout)
	})
	t.Run("dependency timeout shorter than the caller's deadline", func(t *testing.T) {
		s := newServer(t)
		dep := s.dependency()
		dep.Timeout = 200 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		expectDeadline(t, ctx, s, s.patients(dep), dep.Timeout)
	})
	t.Run("caller's shorter deadline wins", func(t *testing.T) {
		s := newServer(t)
		dep := s.dependency()
		dep.Timeout = time.Minute
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		expectDeadline(t, ctx, s, s.patients(dep), 200*time.Millisecond)
	})
}

// TestDefaultTimeouts checks the timeouts Service and Vendor document through what
// a hanging server sees.
func TestDefaultTimeouts(t *testing.T) {
	t.Run("vendor 500ms", func(t *testing.T) {
		s := newServer(t)
		dep := client.Vendor("push-vendor", s.url)
		expectDeadline(t, t.Context(), s, s.patients(dep), 500*time.Millisecond)
	})
	t.Run("service 2000ms", func(t *testing.T) {
		s := newServer(t)
		dep := client.Service("patient", s.url)
		expectDeadline(t, t.Context(), s, s.patients(dep), 2000*time.Millisecond)
	})
}

func TestServiceTokenReachesServer(t *testing.T) {
	s := newServer(t)
	callers := make(chan auth.Caller, 1)
	s.serveStatus(func(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		caller, _ := auth.CallerFrom(ctx)
		callers <- caller
		return healthyStatus(ctx, req)
	})
	// The first attempt is refused by a proxy; the retry must carry the token too.
	s.fail(getStatus, unavailable)
	if _, err := s.patients(s.dependency()).GetSubjectStatus(t.Context(), statusRequest()); err != nil {
		t.Fatalf("GetSubjectStatus: %v", err)
	}
	caller := <-callers
	if caller.Subject != "epro" || caller.Role != authzv1.Role_ROLE_SERVICE {
		t.Fatalf("handler saw caller %+v, want subject epro with role SERVICE", caller)
	}
}

type brokenTokens struct{ err error }

func (b brokenTokens) Token(context.Context) (string, error) { return "", b.err }

func TestTokenSourceErrorFailsWithoutContactingServer(t *testing.T) {
	s := newServer(t)
	errVault := errors.New("secret store unreachable")
	dep := s.dependency()
	dep.Breaker = testBreaker
	c := s.patients(dep, client.WithTokens(brokenTokens{errVault}))
	for range 2 * testBreaker.MinCalls {
		_, err := c.GetSubjectStatus(t.Context(), statusRequest())
		if connect.CodeOf(err) != connect.CodeUnauthenticated || message(err) != "no service token" {
			t.Fatalf("error %v, want unauthenticated: no service token", err)
		}
		if !errors.Is(err, errVault) {
			t.Fatalf("error %v does not wrap the token source's error", err)
		}
	}
	if n := s.attempts(getStatus); n != 0 {
		t.Fatalf("server saw %d attempts, want none", n)
	}
	// Our missing token says nothing about the dependency: the breaker stays closed.
	if _, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest()); err != nil {
		t.Fatalf("with a token: %v", err)
	}
}

func TestCallerMetadataSurvivesTheToken(t *testing.T) {
	s := newServer(t)
	requestIDs := make(chan string, 1)
	s.serveStatus(func(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		info, _ := connect.CallInfoForServerContext(ctx)
		requestIDs <- info.RequestHeader().Get("X-Request-Id")
		info.ResponseHeader().Set("X-Served-By", "patient-1")
		return healthyStatus(ctx, req)
	})
	ctx, info := connect.NewClientContext(t.Context())
	info.RequestHeader().Set("X-Request-Id", "req-123")
	if _, err := s.patients(s.dependency()).GetSubjectStatus(ctx, statusRequest()); err != nil {
		t.Fatalf("GetSubjectStatus: %v", err)
	}
	if got := <-requestIDs; got != "req-123" {
		t.Errorf("server saw X-Request-Id %q, want the caller's req-123", got)
	}
	if got := info.ResponseHeader().Get("X-Served-By"); got != "patient-1" {
		t.Errorf("caller read X-Served-By %q, want patient-1", got)
	}
}

// TestReusedCallContextDoesNotCarryTheTokenOn: a caller may reuse one call context
// (to send the same request id to every dependency). A client without tokens must
// then not send the token another client set on it.
func TestReusedCallContextDoesNotCarryTheTokenOn(t *testing.T) {
	s := newServer(t)
	ctx, info := connect.NewClientContext(t.Context())
	info.RequestHeader().Set("X-Request-Id", "req-123")
	if _, err := s.patients(s.dependency()).GetSubjectStatus(ctx, statusRequest()); err != nil {
		t.Fatalf("with the service token: %v", err)
	}
	tokenless := patientv1connect.NewPatientServiceClient(client.New(s.dependency()))
	_, err := tokenless.GetSubjectStatus(ctx, statusRequest())
	if connect.CodeOf(err) != connect.CodeUnauthenticated || message(err) != "missing bearer token" {
		t.Fatalf("client without tokens on the reused context: %v, want unauthenticated: missing bearer token", err)
	}
}
