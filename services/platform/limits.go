package platform

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect/v2"
)

// How long a request may live, enforced per call (see lifetime):
//
//   - A unary call's deadline is the caller's, cut to the maximum, or the default
//     when the caller sent none (WithUnaryTimeouts). Reading its request body has
//     the same deadline, so a body trickled byte by byte is cut off with it.
//   - A server-streaming call has no deadline, but its one request message must
//     arrive within the body read timeout (WithBodyReadTimeout).
//   - Client and bidi streams have neither: they are bounded by their callers'
//     deadlines and by shutdown.
//   - Every stream is ended with unavailable when the server shuts down (after
//     the drain delay), so one open stream cannot hold the stop.
//   - Plain HTTP routes (Handle) must send their body within the body read timeout.

// errShuttingDown is the cause of a stream's context ending at shutdown.
var errShuttingDown = errors.New("server is shutting down")

// streamsKey is the context key of the context that ends when Serve shuts down,
// which Serve puts in every request's base context.
type streamsKey struct{}

// controllerKey is the context key of the request's *http.ResponseController.
type controllerKey struct{}

// readDeadlines is the outermost HTTP middleware: it gives every request that has
// a body the body read timeout and passes the ResponseController on for lifetime
// to adjust. A request without a body gets none: there is nothing to trickle, and
// over HTTP/1.1 a read deadline would cancel a long-running GET's context.
func readDeadlines(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if timeout > 0 && r.ContentLength != 0 {
			_ = rc.SetReadDeadline(time.Now().Add(timeout))
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), controllerKey{}, rc)))
	})
}

// setReadDeadline sets the request's body read deadline, if it came over HTTP.
func setReadDeadline(ctx context.Context, deadline time.Time) {
	if rc, ok := ctx.Value(controllerKey{}).(*http.ResponseController); ok {
		_ = rc.SetReadDeadline(deadline)
	}
}

// lifetime applies the unary deadlines, the read deadlines and the end of streams
// at shutdown described above.
func lifetime(unaryDefault, unaryLimit time.Duration) connect.ServerInterceptor {
	if unaryLimit > 0 && (unaryDefault <= 0 || unaryDefault > unaryLimit) {
		unaryDefault = unaryLimit
	}
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			if spec.StreamType == connect.StreamTypeUnary {
				return unary(ctx, spec, stream, next, unaryDefault, unaryLimit)
			}
			if spec.StreamType == connect.StreamTypeServer {
				stream = &clearOnReceive{ServerStream: stream, ctx: ctx}
			} else {
				setReadDeadline(ctx, time.Time{})
			}
			streams, ok := ctx.Value(streamsKey{}).(context.Context)
			if !ok {
				return next(ctx, spec, stream)
			}
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			stop := context.AfterFunc(streams, func() { cancel(context.Cause(streams)) })
			defer stop()
			err := next(ctx, spec, stream)
			if err != nil && errors.Is(context.Cause(ctx), errShuttingDown) {
				return connect.NewError(connect.CodeUnavailable, "server is shutting down").WithCause(err)
			}
			return err
		}
	}
}

func unary(ctx context.Context, spec connect.Spec, stream connect.ServerStream, next connect.ServerFunc, def, limit time.Duration) error {
	timeout := limit
	if _, ok := ctx.Deadline(); !ok {
		timeout = def
	}
	if timeout <= 0 {
		return next(ctx, spec, stream)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout) // the earlier deadline wins
	defer cancel()
	deadline, _ := ctx.Deadline()
	setReadDeadline(ctx, deadline)
	err := next(ctx, spec, stream)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		// Out of time, whatever the handler made of it (a cut body read, say).
		return connect.NewError(connect.CodeDeadlineExceeded, "").WithCause(err)
	}
	return err
}

// clearOnReceive lifts a server stream's read deadline once its request arrived.
type clearOnReceive struct {
	connect.ServerStream
	ctx  context.Context
	done bool
}

func (s *clearOnReceive) Receive(msg any) error {
	err := s.ServerStream.Receive(msg)
	if !s.done {
		s.done = true
		setReadDeadline(s.ctx, time.Time{})
	}
	return err
}
