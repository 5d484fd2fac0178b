package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/sony/gobreaker/v2"
)

// Breaker configures a dependency's circuit breaker (github.com/sony/gobreaker).
// It opens when, within Window, at least MinCalls calls were made and at least
// FailureRatio of them failed; while open every call fails at once with
// CodeUnavailable without touching the network; after OpenFor it lets Probes calls
// through and closes when they succeed.
type Breaker struct {
	// FailureRatio that opens the breaker. Default 0.5.
	FailureRatio float64
	// MinCalls in the window before the ratio counts. Default 10.
	MinCalls uint32
	// Window is the rolling window calls are counted in. Default 10s.
	Window time.Duration
	// OpenFor is how long the breaker stays open before probing. Default 5s.
	OpenFor time.Duration
	// Probes is how many calls a half-open breaker lets through. Default 1.
	Probes uint32
	// Disabled turns the breaker off.
	Disabled bool
}

func (b Breaker) withDefaults() Breaker {
	if b.FailureRatio <= 0 {
		b.FailureRatio = 0.5
	}
	if b.MinCalls == 0 {
		b.MinCalls = 10
	}
	if b.Window <= 0 {
		b.Window = 10 * time.Second
	}
	if b.OpenFor <= 0 {
		b.OpenFor = 5 * time.Second
	}
	if b.Probes == 0 {
		b.Probes = 1
	}
	return b
}

type breaker struct {
	name    string
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	timeout time.Duration
}

func newBreaker(dep Dependency, log *slog.Logger) *breaker {
	cfg := dep.Breaker
	if cfg.Disabled {
		return &breaker{name: dep.Name}
	}
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         dep.Name,
		MaxRequests:  cfg.Probes,
		Interval:     cfg.Window,
		BucketPeriod: cfg.Window / 10,
		Timeout:      cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			// Excluded calls (callers giving up) are no evidence either way.
			n := c.Requests - c.TotalExclusions
			return n >= cfg.MinCalls && float64(c.TotalFailures) >= cfg.FailureRatio*float64(n)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("circuit breaker", "dependency", name, "from", from.String(), "to", to.String())
		},
		IsSuccessful: func(err error) bool { return !dependencyFailure(err) },
		// A caller giving up, or running out of its own (shorter) time, is no
		// verdict on the dependency.
		IsExcluded: func(err error) bool {
			return connect.CodeOf(err) == connect.CodeCanceled || errors.Is(err, errCallerDeadline)
		},
	})
	return &breaker{name: dep.Name, cb: cb, timeout: dep.Timeout}
}

// errCallerDeadline marks a call that ran out of time because its caller allowed
// less than the dependency's timeout: a hasty caller must not open the breaker for
// everyone.
var errCallerDeadline = errors.New("deadline set by the caller")

// dependencyFailure reports whether an error says the dependency is unwell, as
// opposed to our request being wrong (invalid argument, not found, denied ...).
func dependencyFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeInternal,
		connect.CodeUnknown, connect.CodeResourceExhausted, connect.CodeDataLoss:
		return true
	}
	return false
}

func (b *breaker) interceptor() connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			if b.cb == nil {
				return next(ctx, spec)
			}
			done, err := b.cb.Allow()
			if err != nil {
				return nil, connect.Errorf(connect.CodeUnavailable, "%s: circuit breaker open", b.name).WithCause(err)
			}
			hasty := false
			if d, ok := ctx.Deadline(); ok && time.Until(d) < b.timeout {
				hasty = true
			}
			report := func(err error) {
				if hasty && connect.CodeOf(err) == connect.CodeDeadlineExceeded {
					err = fmt.Errorf("%w: %w", errCallerDeadline, err)
				}
				done(err)
			}
			stream, err := next(ctx, spec)
			if err != nil {
				report(err)
				return nil, err
			}
			s := &outcomeStream{ClientStream: stream, done: report}
			// A stream its caller abandons by cancelling, without Close or another
			// Receive, must still report, or a half-open breaker would wait for its
			// probe forever.
			stop := context.AfterFunc(ctx, func() { s.report(ctx.Err()) })
			s.mu.Lock()
			if s.finished {
				stop()
			} else {
				s.stop = stop
			}
			s.mu.Unlock()
			return s, nil
		}
	}
}

// outcomeStream reports a call's outcome to the breaker once, when the call ends:
// on the first receive error (io.EOF is success) or on Close.
type outcomeStream struct {
	connect.ClientStream
	done func(error)

	mu       sync.Mutex
	finished bool
	stop     func() bool // unregisters the context watch
}

func (s *outcomeStream) report(err error) {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	s.finished = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	switch {
	case errors.Is(err, context.Canceled):
		err = connect.NewError(connect.CodeCanceled, "call abandoned").WithCause(err)
	case errors.Is(err, context.DeadlineExceeded):
		err = connect.NewError(connect.CodeDeadlineExceeded, "call timed out").WithCause(err)
	}
	s.done(err)
}

func (s *outcomeStream) Send(msg any) error {
	err := s.ClientStream.Send(msg)
	if err != nil && dependencyFailure(err) {
		s.report(err)
	}
	return err
}

func (s *outcomeStream) Receive(msg any) error {
	err := s.ClientStream.Receive(msg)
	if err != nil {
		if isEOF(err) {
			s.report(nil)
		} else {
			s.report(err)
		}
	}
	return err
}

func (s *outcomeStream) Close() error {
	err := s.ClientStream.Close()
	s.report(err)
	return err
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
