package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/sony/gobreaker/v2"
)

// Breaker configures a dependency's circuit breaker (github.com/sony/gobreaker).
// It opens when, within Window, at least MinCalls calls were judged and at least
// FailureRatio of them failed; while open every call fails at once, with an error
// wrapping ErrOpen, without touching the network; after OpenFor it lets Probes
// calls through and closes when they succeed.
//
// A call fails when the dependency answered that it is unwell (unavailable,
// internal, unknown, resource_exhausted, data_loss; for HTTP: a transport error,
// 429 or 5xx) or did not answer in time. A call that ran out of time counts as a
// failure unless its caller allowed it less than half the dependency's Timeout:
// inside a handler the context carries the upstream's deadline, always a little
// shorter than the next hop's timeout, and a hung dependency must still open the
// breaker. A unary call its caller cancelled counts as a failure only when it was
// slow, having waited at least half the Timeout without an answer (an upstream
// that gave up on its deadline reaches us as a cancellation); cancelled sooner, it
// is no evidence either way and is not counted. Errors that say our request was
// wrong (invalid_argument, not_found, permission_denied ...; HTTP 4xx) are
// successes: the dependency is working.
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
	// Disabled turns the breaker off. Default false.
	Disabled bool
}

// ErrOpen is wrapped by the error of every call an open (or fully probing
// half-open) breaker refuses, from New's clients (as CodeUnavailable) and from
// HTTP's: errors.Is(err, client.ErrOpen).
var ErrOpen = errors.New("circuit breaker open")

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

// outcome is how a call ended, before the breaker judges it.
type outcome int

const (
	succeeded outcome = iota // an answer that says the dependency works
	failed                   // an answer (or transport failure) that says it does not
	timedOut                 // no answer before the deadline
	cancelled                // no answer before the caller gave up
)

// Sentinels handed to gobreaker: nil is a success.
var (
	errFailed  = errors.New("dependency failed")
	errIgnored = errors.New("no verdict on the dependency")
)

type breaker struct {
	name    string
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	timeout time.Duration
}

func newBreaker(dep Dependency, log *slog.Logger, metrics *BreakerMetrics) *breaker {
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
			n := c.Requests - c.TotalExclusions
			return n >= cfg.MinCalls && float64(c.TotalFailures) >= cfg.FailureRatio*float64(n)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("circuit breaker", "dependency", name, "from", from.String(), "to", to.String())
			metrics.changed(name, to)
		},
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return errors.Is(err, errIgnored) },
	})
	metrics.add(dep.Name, cb)
	return &breaker{name: dep.Name, cb: cb, timeout: dep.Timeout}
}

// call is one call the breaker let through; end reports how it ended, once.
type call struct {
	b       *breaker
	done    func(error)
	start   time.Time
	allowed time.Duration // until the caller's deadline at the start; long without one
	unary   bool
	once    sync.Once
}

// allow asks the breaker for a call under ctx. It fails with an error wrapping
// ErrOpen (and gobreaker's reason) while the breaker refuses calls. A disabled
// breaker allows every call and judges none.
func (b *breaker) allow(ctx context.Context, unary bool) (*call, error) {
	if b.cb == nil {
		return &call{b: b, done: func(error) {}}, nil
	}
	done, err := b.cb.Allow()
	if err != nil {
		return nil, &openError{name: b.name, reason: err}
	}
	c := &call{b: b, done: done, start: time.Now(), allowed: 1<<63 - 1, unary: unary}
	if d, ok := ctx.Deadline(); ok {
		c.allowed = time.Until(d)
	}
	return c, nil
}

// openError is the refusal of an open breaker: it reads "name: circuit breaker
// open" and wraps both ErrOpen and gobreaker's reason.
type openError struct {
	name   string
	reason error
}

func (e *openError) Error() string   { return e.name + ": " + ErrOpen.Error() }
func (e *openError) Unwrap() []error { return []error{ErrOpen, e.reason} }

// end judges the call by how it ended; only the first report counts.
func (c *call) end(o outcome) {
	c.once.Do(func() { c.done(c.verdict(o)) })
}

func (c *call) verdict(o outcome) error {
	half := c.b.timeout / 2
	switch o {
	case failed:
		return errFailed
	case timedOut:
		// A caller that allowed clearly less than the dependency's timeout and ran
		// out of it has learnt nothing about the dependency.
		if c.allowed < half {
			return errIgnored
		}
		return errFailed
	case cancelled:
		// Waited half the timeout without an answer: a slow call, whoever gave up.
		if c.unary && time.Since(c.start) >= half {
			return errFailed
		}
		return errIgnored
	}
	return nil
}

// rpcOutcome classifies a Connect call's error.
func rpcOutcome(err error) outcome {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return succeeded
	case errors.Is(err, context.Canceled), connect.CodeOf(err) == connect.CodeCanceled:
		return cancelled
	case errors.Is(err, context.DeadlineExceeded), connect.CodeOf(err) == connect.CodeDeadlineExceeded:
		return timedOut
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeInternal, connect.CodeUnknown,
		connect.CodeResourceExhausted, connect.CodeDataLoss:
		return failed
	}
	return succeeded // the dependency answered: our request was wrong
}

// interceptor guards each whole call (all its attempts) of a connect client.
func (b *breaker) interceptor() connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			if b.cb == nil {
				return next(ctx, spec)
			}
			c, err := b.allow(ctx, spec.StreamType == connect.StreamTypeUnary)
			if err != nil {
				return nil, connect.NewError(connect.CodeUnavailable, err.Error()).WithCause(err)
			}
			stream, err := next(ctx, spec)
			if err != nil {
				c.end(rpcOutcome(err))
				return nil, err
			}
			s := &outcomeStream{ClientStream: stream, call: c}
			// A stream its caller abandons by cancelling, without Close or another
			// Receive, must still report, or a half-open breaker would wait for its
			// probe forever.
			stop := context.AfterFunc(ctx, func() { c.end(rpcOutcome(ctx.Err())) })
			s.stop = stop
			return s, nil
		}
	}
}

// outcomeStream reports a call's outcome to the breaker once, when the call ends:
// on the first receive error (io.EOF is success), on a failing send, or on Close.
type outcomeStream struct {
	connect.ClientStream
	call *call
	stop func() bool // unregisters the context watch
}

func (s *outcomeStream) report(err error) {
	s.stop()
	s.call.end(rpcOutcome(err))
}

func (s *outcomeStream) Send(msg any) error {
	err := s.ClientStream.Send(msg)
	if err != nil && rpcOutcome(err) != succeeded {
		s.report(err)
	}
	return err
}

func (s *outcomeStream) Receive(msg any) error {
	err := s.ClientStream.Receive(msg)
	if err != nil {
		s.report(err)
	}
	return err
}

func (s *outcomeStream) Close() error {
	err := s.ClientStream.Close()
	s.report(err)
	return err
}
