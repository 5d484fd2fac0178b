package client

import (
	"context"
	"net/http"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// retryState tells the HTTP layer whether the RPC in flight may be retried. It is
// set by the Connect layer, which knows the method and sees the request message,
// before the HTTP request is made (unary and server-streaming requests are sent
// when their one message is).
type retryState struct {
	safe bool
}

type retryStateKey struct{}

// idempotencyKeyField is the request field that makes a write safe to retry.
const idempotencyKeyField = "idempotency_key"

// markRetryable marks the calls that are safe to send twice: methods marked
// NO_SIDE_EFFECTS or IDEMPOTENT, and requests carrying an idempotency_key.
func markRetryable() connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			if spec.StreamType&connect.StreamTypeClient != 0 {
				// Client and bidi streams send a body that cannot be replayed.
				return next(ctx, spec)
			}
			state := &retryState{safe: spec.IdempotencyLevel != connect.IdempotencyUnknown}
			stream, err := next(context.WithValue(ctx, retryStateKey{}, state), spec)
			if err != nil || state.safe {
				return stream, err
			}
			return &keyWatcher{ClientStream: stream, state: state}, nil
		}
	}
}

// keyWatcher marks a call retryable when its request carries an idempotency key.
type keyWatcher struct {
	connect.ClientStream
	state *retryState
}

func (s *keyWatcher) Send(msg any) error {
	if m, ok := msg.(proto.Message); ok && m != nil {
		r := m.ProtoReflect()
		fd := r.Descriptor().Fields().ByName(idempotencyKeyField)
		if fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() && r.Get(fd).String() != "" {
			s.state.safe = true
		}
	}
	return s.ClientStream.Send(msg)
}

// safeRPC reports whether the Connect layer marked the request's call retryable.
func safeRPC(req *http.Request) bool {
	s, ok := req.Context().Value(retryStateKey{}).(*retryState)
	return ok && s.safe
}

// idempotencyKeyHeader is the request header that makes a plain HTTP request safe
// to retry whatever its method, for vendors that deduplicate by it.
const idempotencyKeyHeader = "Idempotency-Key"

// safeHTTP reports whether a plain HTTP request is safe to send twice: its method
// is safe or idempotent (GET, HEAD, OPTIONS, PUT, DELETE), or it carries an
// Idempotency-Key.
func safeHTTP(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get(idempotencyKeyHeader) != ""
}
