package client_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// gatewayFaults are the outcomes that say the request was not processed, so a safe
// call may be sent again.
var gatewayFaults = map[string]fault{
	"503":               unavailable,
	"502":               {status: http.StatusBadGateway},
	"504":               {status: http.StatusGatewayTimeout},
	"429":               {status: http.StatusTooManyRequests},
	"connection closed": drop,
	"connection reset":  reset,
}

func TestRetriesSafeCalls(t *testing.T) {
	for name, f := range gatewayFaults {
		t.Run("no side effects/"+name, func(t *testing.T) {
			s := newServer(t)
			s.fail(getStatus, f, f)
			req := statusRequest()
			res, err := s.patients(s.dependency()).GetSubjectStatus(t.Context(), req)
			if err != nil {
				t.Fatalf("GetSubjectStatus after two %s: %v, want success on the 3rd attempt", name, err)
			}
			if res.GetSubjectUuid() != req.GetSubjectUuid() || !res.GetExists() {
				t.Errorf("response %v is not the served one", res)
			}
			if n := s.attempts(getStatus); n != 3 {
				t.Errorf("server saw %d attempts, want 3", n)
			}
		})
	}
	t.Run("idempotent/503", func(t *testing.T) {
		s := newServer(t)
		s.fail(updateProfile, unavailable)
		subject := uuid.NewString()
		tokens := auth.NewSignerTokens(s.signer, auth.Caller{Subject: subject, Role: authzv1.Role_ROLE_PATIENT}, time.Hour)
		c := s.patients(s.dependency(), client.WithTokens(tokens))
		res, err := c.UpdateProfile(t.Context(), &patientv1.UpdateProfileRequest{
			Profile:    &patientv1.Profile{Language: "de"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"language"}},
		})
		if err != nil {
			t.Fatalf("UpdateProfile after a 503: %v", err)
		}
		if res.GetSubjectUuid() != subject || res.GetProfile().GetLanguage() != "de" {
			t.Errorf("response %v", res)
		}
		if n := s.attempts(updateProfile); n != 2 {
			t.Errorf("server saw %d attempts, want 2", n)
		}
	})
	t.Run("gives up after MaxAttempts", func(t *testing.T) {
		s := newServer(t)
		s.failAlways(getStatus, unavailable)
		dep := s.dependency()
		dep.MaxAttempts = 4
		_, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest())
		// The last answer reaches the caller as it was, not as "giving up".
		if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(message(err), "503") {
			t.Fatalf("error %v, want unavailable naming the HTTP 503", err)
		}
		if n := s.attempts(getStatus); n != 4 {
			t.Errorf("server saw %d attempts, want MaxAttempts = 4", n)
		}
	})
	t.Run("MaxAttempts 1 turns retries off", func(t *testing.T) {
		s := newServer(t)
		s.fail(getStatus, unavailable)
		dep := s.dependency()
		dep.MaxAttempts = 1
		_, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest())
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("error %v, want unavailable", err)
		}
		if n := s.attempts(getStatus); n != 1 {
			t.Errorf("server saw %d attempts, want 1", n)
		}
	})
}

func TestNeverResendsAWriteWithoutIdempotencyKey(t *testing.T) {
	writes := map[string]struct {
		procedure string
		call      func(*testing.T, *server) error
	}{
		"Login": {login, func(t *testing.T, s *server) error {
			_, err := s.accounts(s.dependency()).Login(t.Context(), loginRequest())
			return err
		}},
		"Register without a key": {register, func(t *testing.T, s *server) error {
			_, err := s.accounts(s.dependency()).Register(t.Context(), registerRequest(""))
			return err
		}},
	}
	t.Run("baseline: Login is served", func(t *testing.T) {
		s := newServer(t)
		res, err := s.accounts(s.dependency()).Login(t.Context(), loginRequest())
		if err != nil || res.GetRole() != authzv1.Role_ROLE_PATIENT {
			t.Fatalf("Login on a healthy server: %v, %v", res, err)
		}
		if n := s.attempts(login); n != 1 {
			t.Fatalf("server saw %d attempts, want 1", n)
		}
	})
	for name, w := range writes {
		for faultName, f := range gatewayFaults {
			t.Run(name+"/"+faultName, func(t *testing.T) {
				s := newServer(t)
				// Every attempt would fail: a resent write shows up as a second attempt.
				s.failAlways(w.procedure, f)
				err := w.call(t, s)
				if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("error %v, want unavailable", err)
				}
				if f.status != 0 && !strings.Contains(message(err), http.StatusText(f.status)) {
					t.Errorf("message %q does not name the HTTP status %d", message(err), f.status)
				}
				if n := s.attempts(w.procedure); n != 1 {
					t.Errorf("server saw %d attempts of a write, want exactly 1", n)
				}
			})
		}
	}
}

func TestRetriesAWriteThatCarriesAnIdempotencyKey(t *testing.T) {
	for _, name := range []string{"503", "connection closed", "connection reset"} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			s.fail(register, gatewayFaults[name])
			key := "signup-" + uuid.NewString()
			res, err := s.accounts(s.dependency()).Register(t.Context(), registerRequest(key))
			if err != nil {
				t.Fatalf("Register after a %s: %v", name, err)
			}
			if want := uuid.NewSHA1(uuid.NameSpaceOID, []byte(key)).String(); res.GetCodeSent().GetRegistrationId() != want {
				t.Errorf("registration %q, want the registration of key %q", res.GetCodeSent().GetRegistrationId(), key)
			}
			if n := s.attempts(register); n != 2 {
				t.Errorf("server saw %d attempts, want 2", n)
			}
		})
	}
}

// TestStatusInTrailersIsNotRetried pins the property that keeps the two layers from
// multiplying attempts (3 x 3 = 9): a handler's error status travels in gRPC
// trailers behind HTTP 200, which the HTTP layer (the one that retries) cannot see
// and does not retry, and the Connect layer retries nothing at all. So a server
// that ran the handler and answered UNAVAILABLE gets exactly one attempt, even for
// a call that is safe to resend.
func TestStatusInTrailersIsNotRetried(t *testing.T) {
	s := newServer(t)
	s.serveStatus(func(context.Context, *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		return nil, connect.NewError(connect.CodeUnavailable, "subject store is failing over")
	})
	_, err := s.patients(s.dependency()).GetSubjectStatus(t.Context(), statusRequest())
	if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "subject store is failing over" {
		t.Fatalf("error %v, want the handler's unavailable status unchanged", err)
	}
	if n := s.attempts(getStatus); n != 1 {
		t.Fatalf("server saw %d attempts, want exactly 1", n)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	cases := map[string]struct {
		retryAfter func() string
		atLeast    time.Duration
	}{
		"delay seconds": {func() string { return "1" }, 900 * time.Millisecond},
		// An HTTP date has whole seconds: 3s ahead is at least 2s ahead.
		"HTTP date": {func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, 900 * time.Millisecond},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			dep := s.dependency()
			dep.BackoffMax = 5 * time.Second // so the cap does not cut the server's wish
			dep.Timeout = 30 * time.Second
			s.fail(getStatus, fault{status: http.StatusServiceUnavailable, retryAfter: c.retryAfter()})
			if _, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest()); err != nil {
				t.Fatalf("GetSubjectStatus: %v", err)
			}
			at := s.arrivalTimes(getStatus)
			if len(at) != 2 {
				t.Fatalf("server saw %d attempts, want 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < c.atLeast {
				t.Errorf("second attempt %v after the first, want at least %v", gap, c.atLeast)
			}
		})
	}
	t.Run("capped at BackoffMax", func(t *testing.T) {
		s := newServer(t)
		dep := s.dependency()
		dep.Timeout = 5 * time.Second // waiting the 30s asked for would exceed it
		s.fail(getStatus, fault{status: http.StatusServiceUnavailable, retryAfter: "30"})
		if _, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest()); err != nil {
			t.Fatalf("GetSubjectStatus: %v, want a retry after BackoffMax, not after 30s", err)
		}
		if n := s.attempts(getStatus); n != 2 {
			t.Errorf("server saw %d attempts, want 2", n)
		}
	})
}

func TestRetryBudget(t *testing.T) {
	t.Run("caps retries at a fraction of calls", func(t *testing.T) {
		s := newServer(t)
		s.failAlways(getStatus, unavailable)
		dep := s.dependency()
		dep.MaxAttempts = 3
		dep.RetryBudget = 0.1
		dep.Breaker.Disabled = true // an open breaker would stop the calls instead
		const calls = 60
		c := s.patients(dep)
		for i := range calls {
			if _, err := c.GetSubjectStatus(t.Context(), statusRequest()); connect.CodeOf(err) != connect.CodeUnavailable {
				t.Fatalf("call %d: %v, want unavailable", i, err)
			}
		}
		// Unbudgeted, 60 calls would make 180 attempts. The bucket starts with 10
		// tokens and earns 0.1 per call.
		n := s.attempts(getStatus)
		if limit := calls + 10 + calls*0.1 + 2; float64(n) > limit {
			t.Errorf("server saw %d attempts for %d calls, want at most %v", n, calls, limit)
		}
		if n <= calls {
			t.Errorf("server saw %d attempts for %d calls: no retry at all", n, calls)
		}
	})
	t.Run("pays only for retries sent", func(t *testing.T) {
		s := newServer(t)
		s.failAlways(getStatus, unavailable)
		dep := s.dependency()
		dep.MaxAttempts = 2
		dep.RetryBudget = 0.001 // next to nothing earned: the initial 10 tokens are all
		dep.Breaker.Disabled = true
		c := s.patients(dep)
		for range 20 {
			_, _ = c.GetSubjectStatus(t.Context(), statusRequest())
		}
		// Each call sends one retry; the last failure of a call, which no retry
		// follows, must not cost a token. So the 10 tokens buy 10 retries.
		if n := s.attempts(getStatus); n != 20+10 {
			t.Errorf("server saw %d attempts for 20 calls, want 30 (10 retries)", n)
		}
	})
}

// protocols are the wire protocols a dependency may speak.
var protocols = []string{"grpc", "connect", "grpcweb"}

// TestHandlerAnswerIsNotRetried: the Connect protocol sends a unary error as an
// HTTP status (unavailable 503, resource_exhausted 429, deadline_exceeded 504) with
// a JSON body, and gRPC-Web as grpc-status in the headers. Either way the handler
// ran and answered: resending would run it again, and across hops the attempts
// would multiply.
func TestHandlerAnswerIsNotRetried(t *testing.T) {
	codes := []connect.Code{connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded}
	for _, protocol := range protocols {
		for _, code := range codes {
			t.Run(protocol+"/"+code.String(), func(t *testing.T) {
				s := newServer(t)
				s.serveStatus(func(context.Context, *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
					return nil, connect.NewError(code, "the handler says so")
				})
				dep := s.dependency()
				dep.Protocol = client.Protocol(protocol)
				_, err := s.patients(dep).GetSubjectStatus(t.Context(), statusRequest())
				if connect.CodeOf(err) != code || message(err) != "the handler says so" {
					t.Fatalf("error %v, want the handler's %v unchanged", err, code)
				}
				if n := s.attempts(getStatus); n != 1 {
					t.Fatalf("server saw %d attempts, want exactly 1: the handler's answer was retried", n)
				}
			})
		}
	}
}

// TestProxyErrorIsRetried: a 503 from a proxy or load balancer in front of the
// dependency is no answer of the handler, whatever protocol the call speaks, even
// when the proxy answers in JSON.
func TestProxyErrorIsRetried(t *testing.T) {
	proxyFaults := map[string]fault{
		"plain text": unavailable,
		"html": {status: http.StatusServiceUnavailable, contentType: "text/html; charset=utf-8",
			body: "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"},
		"json without a code": {status: http.StatusServiceUnavailable, contentType: "application/json",
			body: `{"error": "no healthy upstream"}`},
		"json with a numeric code": {status: http.StatusTooManyRequests, contentType: "application/json",
			body: `{"code": 429, "message": "rate limited"}`},
		"json with an unknown code": {status: http.StatusBadGateway, contentType: "application/json",
			body: `{"code": "bad_gateway"}`},
		"not json": {status: http.StatusGatewayTimeout, contentType: "application/json", body: "upstream timed out"},
	}
	for _, protocol := range protocols {
		for name, f := range proxyFaults {
			t.Run(protocol+"/"+name, func(t *testing.T) {
				s := newServer(t)
				s.fail(getStatus, f, f)
				dep := s.dependency()
				dep.Protocol = client.Protocol(protocol)
				req := statusRequest()
				res, err := s.patients(dep).GetSubjectStatus(t.Context(), req)
				if err != nil || res.GetSubjectUuid() != req.GetSubjectUuid() {
					t.Fatalf("after two proxy errors: %v, %v; want the third attempt served", res, err)
				}
				if n := s.attempts(getStatus); n != 3 {
					t.Errorf("server saw %d attempts, want 3", n)
				}
			})
		}
	}
}
