package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/internal/logbuf"
)

var testBreaker = client.Breaker{MinCalls: 5, FailureRatio: 0.5, OpenFor: 300 * time.Millisecond, Window: 10 * time.Second}

func failing(code connect.Code) statusFunc {
	return func(context.Context, *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		return nil, connect.NewError(code, "failing on purpose")
	}
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	s := newServer(t)
	s.serveStatus(failing(connect.CodeUnavailable))
	dep := s.dependency()
	dep.Breaker = testBreaker
	logs := &logbuf.Buffer{}
	c := s.patients(dep, client.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	ctx := t.Context()

	var lastFailure time.Time
	for i := range 5 {
		lastFailure = time.Now()
		_, err := c.GetSubjectStatus(ctx, statusRequest())
		if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "failing on purpose" {
			t.Fatalf("call %d: %v, want the server's unavailable", i, err)
		}
	}
	if n := s.attempts(getStatus); n != 5 {
		t.Fatalf("server saw %d attempts, want 5", n)
	}

	// Open: fails at once, naming the dependency, without touching the network.
	_, err := c.GetSubjectStatus(ctx, statusRequest())
	if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "patient: circuit breaker open" {
		t.Fatalf("call after 5 failures: %v, want unavailable from the open breaker", err)
	}
	if n := s.attempts(getStatus); n != 5 {
		t.Fatalf("server saw %d attempts, want still 5 while open", n)
	}

	// After OpenFor a single probe goes through; it succeeds and closes the breaker.
	s.serveStatus(healthyStatus)
	var recovered time.Time
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		_, err := c.GetSubjectStatus(ctx, statusRequest())
		if err == nil {
			recovered = time.Now()
			break
		}
		if !strings.Contains(message(err), "circuit breaker open") {
			t.Fatalf("while waiting for half-open: %v", err)
		}
	}
	if recovered.IsZero() {
		t.Fatal("breaker did not let a probe through within 5s")
	}
	if n := s.attempts(getStatus); n != 6 {
		t.Fatalf("server saw %d attempts when the probe succeeded, want 6: calls reached it while open", n)
	}
	if waited := recovered.Sub(lastFailure); waited < testBreaker.OpenFor {
		t.Errorf("probe after %v, want no earlier than OpenFor %v", waited, testBreaker.OpenFor)
	}
	for i := range 3 {
		if _, err := c.GetSubjectStatus(ctx, statusRequest()); err != nil {
			t.Fatalf("call %d after recovery: %v", i, err)
		}
	}
	if n := s.attempts(getStatus); n != 9 {
		t.Errorf("server saw %d attempts, want 9: a closed breaker lets every call through", n)
	}

	// Each change of state is logged with the dependency.
	var changes []string
	for line := range strings.Lines(logs.String()) {
		var entry struct{ Msg, Dependency, From, To string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if entry.Msg == "circuit breaker" && entry.Dependency == "patient" {
			changes = append(changes, entry.From+">"+entry.To)
		}
	}
	if want := []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(changes, want) {
		t.Errorf("logged state changes %v, want %v", changes, want)
	}
}

func TestBreakerIgnoresCallerErrors(t *testing.T) {
	cases := map[string]struct {
		code  connect.Code
		serve statusFunc                    // what the handler does; nil: it answers
		opts  func(*server) []client.Option // how the client calls
		req   func() *patientv1.GetSubjectStatusRequest
	}{
		"not found": {code: connect.CodeNotFound, serve: failing(connect.CodeNotFound)},
		"invalid argument": {code: connect.CodeInvalidArgument, req: func() *patientv1.GetSubjectStatusRequest {
			return &patientv1.GetSubjectStatusRequest{SubjectUuid: "not-a-uuid"}
		}},
		"permission denied": {code: connect.CodePermissionDenied, opts: func(s *server) []client.Option {
			patient := auth.Caller{Subject: uuid.NewString(), Role: authzv1.Role_ROLE_PATIENT}
			return []client.Option{client.WithTokens(auth.NewSignerTokens(s.signer, patient, time.Hour))}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			if tc.serve != nil {
				s.serveStatus(tc.serve)
			}
			var opts []client.Option
			if tc.opts != nil {
				opts = tc.opts(s)
			}
			req := statusRequest
			if tc.req != nil {
				req = tc.req
			}
			dep := s.dependency()
			dep.Breaker = testBreaker
			c := s.patients(dep, opts...) // one client: one breaker for all calls
			calls := 2 * int(testBreaker.MinCalls)
			for i := range calls {
				if _, err := c.GetSubjectStatus(t.Context(), req()); connect.CodeOf(err) != tc.code {
					t.Fatalf("call %d: %v, want %v", i, err, tc.code)
				}
			}
			if n := s.attempts(getStatus); n != calls {
				t.Fatalf("server saw %d attempts, want all %d: the breaker opened on the caller's errors", n, calls)
			}
		})
	}
}

// TestBreakerCountsCallsNotAttempts: the breaker sits above the retries, so a call
// that failed three attempts counts once. Counting attempts, two calls would reach
// MinCalls 5 and open it.
func TestBreakerCountsCallsNotAttempts(t *testing.T) {
	s := newServer(t)
	s.failAlways(getStatus, unavailable)
	dep := s.dependency()
	dep.MaxAttempts = 3
	dep.Breaker = testBreaker
	c := s.patients(dep)
	for i := range 3 {
		_, err := c.GetSubjectStatus(t.Context(), statusRequest())
		if connect.CodeOf(err) != connect.CodeUnavailable || strings.Contains(message(err), "circuit breaker") {
			t.Fatalf("call %d: %v, want the server's 503", i, err)
		}
	}
	if n := s.attempts(getStatus); n != 9 {
		t.Fatalf("server saw %d attempts, want 3 calls x 3 attempts", n)
	}
}

// TestBreakerOpensOnResetConnections: a dependency that resets connections is
// failing, not being cancelled by us (connect alone reports a reset as CANCELED,
// which the breaker leaves out).
func TestBreakerOpensOnResetConnections(t *testing.T) {
	s := newServer(t)
	s.failAlways(login, reset)
	dep := s.dependency()
	dep.Breaker = testBreaker
	c := s.accounts(dep)
	for i := range 5 {
		if _, err := c.Login(t.Context(), loginRequest()); connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("call %d: %v, want unavailable", i, err)
		}
	}
	_, err := c.Login(t.Context(), loginRequest())
	if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "patient: circuit breaker open" {
		t.Fatalf("call after 5 resets: %v, want the open breaker", err)
	}
	if n := s.attempts(login); n != 5 {
		t.Errorf("server saw %d attempts, want 5", n)
	}
}

// A caller that allows less time than the dependency's timeout and runs out of it
// has learnt nothing about the dependency: its deadlines must not open the breaker,
// while the same hang under the dependency's own timeout does.
func TestBreakerIgnoresCallersOwnShortDeadlines(t *testing.T) {
	s := newServer(t)
	s.serveStatus(func(ctx context.Context, _ *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		return nil, connect.NewError(connect.CodeDeadlineExceeded, "too slow")
	})
	dep := s.dependency()
	dep.Timeout = 300 * time.Millisecond
	dep.Breaker = testBreaker
	c := s.patients(dep)
	for i := range 8 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := c.GetSubjectStatus(ctx, statusRequest())
		cancel()
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Fatalf("hasty call %d: %v, want deadline_exceeded", i, err)
		}
	}
	if n := s.attempts(getStatus); n != 8 {
		t.Fatalf("server saw %d attempts, want 8: the breaker opened on the callers' own deadlines", n)
	}
	for i := range 5 {
		if _, err := c.GetSubjectStatus(t.Context(), statusRequest()); connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Fatalf("patient call %d: %v", i, err)
		}
	}
	_, err := c.GetSubjectStatus(t.Context(), statusRequest())
	if !strings.Contains(message(err), "circuit breaker open") {
		t.Fatalf("after 5 timeouts under the dependency's own timeout: %v, want the breaker open", err)
	}
}

// A half-open breaker lets one probe through. When that probe is a stream its
// caller abandons by cancelling, without reading it to the end or closing it, the
// breaker must still hear that it ended, or it would wait for the probe forever
// and refuse every later call.
func TestBreakerHearsFromAnAbandonedStreamProbe(t *testing.T) {
	s := newServer(t)
	s.serveStatus(failing(connect.CodeUnavailable))
	dep := s.dependency()
	dep.Breaker = client.Breaker{MinCalls: 2, FailureRatio: 0.5, OpenFor: 200 * time.Millisecond, Window: 10 * time.Second}
	admin := auth.NewSignerTokens(s.signer, auth.Caller{Subject: "admin-1", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	cc := s.client(dep, client.WithTokens(admin)) // one client: one breaker for both services
	patients := patientv1connect.NewPatientServiceClient(cc)
	exports := eprov1connect.NewEproServiceClient(cc)

	for range 2 {
		if _, err := patients.GetSubjectStatus(t.Context(), statusRequest()); connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("failing call: %v", err)
		}
	}
	if _, err := patients.GetSubjectStatus(t.Context(), statusRequest()); !strings.Contains(message(err), "circuit breaker open") {
		t.Fatalf("breaker did not open: %v", err)
	}
	time.Sleep(dep.Breaker.OpenFor + 50*time.Millisecond)

	// The probe: an export stream, read once and then abandoned.
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := exports.ExportResponses(ctx, &eprov1.ExportResponsesRequest{
		Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: uuid.NewString()})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := stream.Receive(); err != nil {
		t.Fatalf("probe's first message: %v", err)
	}
	cancel()

	s.serveStatus(healthyStatus)
	var last error
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		if _, last = patients.GetSubjectStatus(t.Context(), statusRequest()); last == nil {
			return
		}
	}
	t.Fatalf("breaker still refusing 5s after its probe was abandoned: %v", last)
}

// TestBreakerSeesAHungDependencyTwoHopsDown: inside a handler the context carries
// the upstream's deadline, a little shorter than the next hop's timeout. A
// dependency that hangs on every call must still open the breaker of the service
// in the middle; counting every such timeout as the caller's own haste, it never
// opened.
func TestBreakerSeesAHungDependencyTwoHopsDown(t *testing.T) {
	back := newServer(t)
	hang(back)
	backDep := back.dependency()
	backDep.Timeout = 300 * time.Millisecond
	backDep.Breaker = testBreaker
	backDep.MaxAttempts = 1
	toBack := back.patients(backDep)

	// The service in the middle asks the hung one, under its own caller's deadline.
	front := newServer(t)
	answered := make(chan error, 1)
	front.serveStatus(func(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		res, err := toBack.GetSubjectStatus(ctx, req)
		answered <- err
		return res, err
	})
	frontDep := front.dependency()
	frontDep.Timeout = backDep.Timeout // the upstream allows the same, so the middle has a little less
	frontDep.Breaker.Disabled = true
	frontDep.MaxAttempts = 1
	toFront := front.patients(frontDep)

	for i := range int(testBreaker.MinCalls) {
		_, err := toFront.GetSubjectStatus(t.Context(), statusRequest())
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Fatalf("call %d through the middle: %v, want deadline_exceeded", i, err)
		}
		// The middle sees its deadline pass or, as often, its upstream give up on
		// the same deadline first: a cancellation after waiting the whole time.
		if err := <-answered; connect.CodeOf(err) != connect.CodeDeadlineExceeded && connect.CodeOf(err) != connect.CodeCanceled {
			t.Fatalf("call %d, the middle's call to the hung service: %v, want deadline_exceeded or canceled", i, err)
		}
	}
	_, err := toFront.GetSubjectStatus(t.Context(), statusRequest())
	if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "patient: circuit breaker open" {
		t.Fatalf("after %d timeouts of the hung service: %v, want the middle's breaker open", testBreaker.MinCalls, err)
	}
	if err := <-answered; !errors.Is(err, client.ErrOpen) {
		t.Errorf("the middle's call: %v, want an error wrapping client.ErrOpen", err)
	}
	if n := back.attempts(getStatus); n != int(testBreaker.MinCalls) {
		t.Errorf("hung service saw %d attempts, want %d: none once the breaker opened", n, testBreaker.MinCalls)
	}
}

// TestBreakerJudgesCancelledCallsByHowLongTheyWaited: a caller that gives up soon
// says nothing about the dependency; one that waited half the dependency's timeout
// without an answer met a slow dependency, and that counts.
func TestBreakerJudgesCancelledCallsByHowLongTheyWaited(t *testing.T) {
	s := newServer(t)
	hang(s)
	dep := s.dependency()
	dep.Timeout = 400 * time.Millisecond
	dep.Breaker = testBreaker
	c := s.patients(dep)
	callCancelledAfter := func(wait time.Duration) error {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stop := time.AfterFunc(wait, cancel)
		defer stop.Stop()
		_, err := c.GetSubjectStatus(ctx, statusRequest())
		return err
	}
	// An open breaker would answer unavailable at once instead.
	for i := range 2 * int(testBreaker.MinCalls) {
		if err := callCancelledAfter(20 * time.Millisecond); connect.CodeOf(err) != connect.CodeCanceled {
			t.Fatalf("call %d cancelled soon: %v, want canceled: calls cancelled soon opened the breaker", i, err)
		}
	}
	for i := range int(testBreaker.MinCalls) {
		if err := callCancelledAfter(dep.Timeout * 3 / 4); connect.CodeOf(err) != connect.CodeCanceled {
			t.Fatalf("slow call %d: %v, want canceled", i, err)
		}
	}
	err := callCancelledAfter(dep.Timeout * 3 / 4)
	if !errors.Is(err, client.ErrOpen) || message(err) != "patient: circuit breaker open" {
		t.Fatalf("after %d slow calls: %v, want the breaker open", testBreaker.MinCalls, err)
	}
}
