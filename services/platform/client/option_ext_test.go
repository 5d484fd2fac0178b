package client_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connectinprocess"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// recorder is an interceptor standing in for tracing: it records each call it
// sees and how the call ended.
type recorder struct {
	name string
	mu   sync.Mutex
	log  *[]string
	seen []error
}

func (r *recorder) interceptor() connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			r.mu.Lock()
			*r.log = append(*r.log, r.name)
			r.mu.Unlock()
			stream, err := next(ctx, spec)
			if err != nil {
				r.record(err)
				return nil, err
			}
			return &recordedStream{ClientStream: stream, r: r}, nil
		}
	}
}

func (r *recorder) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, err)
}

func (r *recorder) calls() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

type recordedStream struct {
	connect.ClientStream
	r    *recorder
	once sync.Once
}

func (s *recordedStream) Receive(msg any) error {
	err := s.ClientStream.Receive(msg)
	if err != nil {
		s.once.Do(func() { s.r.record(err) })
	}
	return err
}

// TestInterceptorsSeeWholeCalls: interceptors given with WithInterceptors run
// outermost, in the order given, and see each call once with its final outcome:
// one call, not its three attempts, and the open breaker's refusals too.
func TestInterceptorsSeeWholeCalls(t *testing.T) {
	s := newServer(t)
	s.failAlways(getStatus, unavailable)
	dep := s.dependency()
	dep.MaxAttempts = 3
	dep.Breaker = testBreaker
	var order []string
	outer, inner := &recorder{name: "outer", log: &order}, &recorder{name: "inner", log: &order}
	c := s.patients(dep, client.WithInterceptors(outer.interceptor()), client.WithInterceptors(inner.interceptor()))

	calls := int(testBreaker.MinCalls) + 2
	for range calls {
		_, _ = c.GetSubjectStatus(t.Context(), statusRequest())
	}
	if n := s.attempts(getStatus); n != 3*int(testBreaker.MinCalls) {
		t.Fatalf("server saw %d attempts, want %d: 3 per call until the breaker opened", n, 3*testBreaker.MinCalls)
	}
	seen := outer.calls()
	if len(seen) != calls {
		t.Fatalf("interceptor saw %d calls, want %d: one per call, attempts and refusals alike", len(seen), calls)
	}
	for i, err := range seen {
		open := i >= int(testBreaker.MinCalls)
		if connect.CodeOf(err) != connect.CodeUnavailable || errors.Is(err, client.ErrOpen) != open {
			t.Errorf("call %d: interceptor saw %v, want unavailable, from the open breaker: %v", i, err, open)
		}
	}
	if want := slices.Repeat([]string{"outer", "inner"}, calls); !slices.Equal(order, want) {
		t.Errorf("interceptors ran %v, want the first given outermost: %v", order, want)
	}
}

// TestConnectTransportKeepsTheKit: in-process calls (the dev stack) still get the
// token, the timeout and the breaker.
func TestConnectTransportKeepsTheKit(t *testing.T) {
	headers := make(chan string, 20)
	rpc := connect.NewServer()
	patientv1connect.RegisterPatientServiceHandler(rpc, statusHandler{serve: func(ctx context.Context, _ *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
		info, _ := connect.CallInfoForServerContext(ctx)
		headers <- info.RequestHeader().Get("Authorization")
		if _, ok := ctx.Deadline(); !ok {
			return nil, connect.NewError(connect.CodeAborted, "no deadline")
		}
		return nil, connect.NewError(connect.CodeUnavailable, "in-process failure")
	}})
	dep := client.Service("patient", "http://unused")
	dep.Breaker = testBreaker
	c := patientv1connect.NewPatientServiceClient(client.New(dep,
		client.WithConnectTransport(connectinprocess.New(rpc)),
		client.WithTokens(auth.StaticToken("svc-token")),
		client.WithLogger(slog.New(slog.DiscardHandler))))
	for i := range testBreaker.MinCalls {
		_, err := c.GetSubjectStatus(t.Context(), statusRequest())
		if connect.CodeOf(err) != connect.CodeUnavailable || message(err) != "in-process failure" {
			t.Fatalf("call %d: %v, want the handler's unavailable (with a deadline)", i, err)
		}
		if h := <-headers; h != "Bearer svc-token" {
			t.Fatalf("call %d: handler saw Authorization %q, want the token", i, h)
		}
	}
	if _, err := c.GetSubjectStatus(t.Context(), statusRequest()); !errors.Is(err, client.ErrOpen) {
		t.Fatalf("after %d failures in process: %v, want the breaker open", testBreaker.MinCalls, err)
	}
}

// statusHandler serves GetSubjectStatus with a function.
type statusHandler struct {
	patientv1connect.UnimplementedPatientServiceHandler
	serve statusFunc
}

func (h statusHandler) GetSubjectStatus(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	return h.serve(ctx, req)
}
