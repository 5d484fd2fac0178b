package telemetry

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/request"
)

// RPC span attributes (OpenTelemetry RPC semantic conventions, Connect flavour).
const (
	attrRPCSystem    = attribute.Key("rpc.system")
	attrRPCService   = attribute.Key("rpc.service")
	attrRPCMethod    = attribute.Key("rpc.method")
	attrRPCErrorCode = attribute.Key("rpc.connect_rpc.error_code")
	rpcSystemConnect = "connect_rpc"
)

// ServerInterceptor traces and measures every call a server answers. Put it in
// the server's telemetry slot (platform.WithTelemetry): it runs inside request
// info and outside logging, so it sees the code the client receives.
//
// It continues the caller's trace from the W3C traceparent request header (a new
// trace when there is none), starts a server span named after the procedure
// ("trialhub.trial.v1.TrialService/EnrollSubject") with rpc.system
// "connect_rpc", rpc.service and rpc.method, and on failure
// rpc.connect_rpc.error_code and an Error status for the codes that mean the
// server failed (unknown, deadline_exceeded, unimplemented, internal,
// unavailable, data_loss); a caller's mistake is not the server's error. It sets
// request.Info's TraceID to the span's trace id, so logs and audit events name the
// trace even when the call came without one. It records
// rpc_server_duration_seconds{procedure, code}.
func (t *Telemetry) ServerInterceptor() connect.ServerInterceptor {
	tracer := t.tracer()
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			start := time.Now()
			if call, ok := connect.CallInfoForServerContext(ctx); ok {
				ctx = t.prop.Extract(ctx, headerCarrier{call.RequestHeader()})
			}
			ctx, span := tracer.Start(ctx, spanName(spec.Procedure),
				trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(rpcAttrs(spec.Procedure)...))
			defer span.End()
			if sc := span.SpanContext(); sc.HasTraceID() {
				info := request.From(ctx)
				info.TraceID = sc.TraceID().String()
				ctx = request.With(ctx, info)
			}
			err := next(ctx, spec, stream)
			code := codeOf(err)
			if err != nil {
				span.SetAttributes(attrRPCErrorCode.String(code))
				if serverFault(connect.CodeOf(err)) {
					span.SetStatus(codes.Error, code)
				}
			}
			t.rpc.server.WithLabelValues(spec.Procedure, code).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// ClientInterceptor traces and measures every call a client makes. Give it to
// client.WithInterceptors (or connect.NewClient): it runs above the client's
// retries, so one call is one span however many attempts it took.
//
// It starts a client span named after the procedure, child of the span in the
// call's context (the server span of the request being served, a job's span),
// with the same attributes as ServerInterceptor, injects the W3C traceparent
// request header, and ends the span when the call ends (Close, or Receive
// reaching the end of the stream or an error). Any failure is an Error status on
// a client span. It records rpc_client_duration_seconds{procedure, code}.
func (t *Telemetry) ClientInterceptor() connect.ClientInterceptor {
	tracer := t.tracer()
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			start := time.Now()
			ctx, span := tracer.Start(ctx, spanName(spec.Procedure),
				trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(rpcAttrs(spec.Procedure)...))
			if call, ok := connect.CallInfoForClientContext(ctx); ok {
				t.prop.Inject(ctx, headerCarrier{call.RequestHeader()})
			}
			s := &clientSpanStream{span: span, end: func(err error) {
				code := codeOf(err)
				if err != nil {
					span.SetAttributes(attrRPCErrorCode.String(code))
					span.SetStatus(codes.Error, code)
				}
				span.End()
				t.rpc.client.WithLabelValues(spec.Procedure, code).Observe(time.Since(start).Seconds())
			}}
			stream, err := next(ctx, spec)
			if err != nil {
				s.finish(err)
				return nil, err
			}
			s.ClientStream = stream
			return s, nil
		}
	}
}

// clientSpanStream ends the call's span once, with the first error the call saw.
type clientSpanStream struct {
	connect.ClientStream
	span trace.Span
	end  func(error)

	mu   sync.Mutex
	err  error // the first error other than io.EOF
	done bool
}

func (s *clientSpanStream) note(err error) {
	if err == nil || errors.Is(err, io.EOF) {
		return
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *clientSpanStream) finish(err error) {
	s.note(err)
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	err = s.err
	s.mu.Unlock()
	s.end(err)
}

func (s *clientSpanStream) Send(msg any) error {
	err := s.ClientStream.Send(msg)
	if err != nil && !errors.Is(err, io.EOF) {
		s.note(err) // the real status comes from Receive; keep this as a fallback
	}
	return err
}

func (s *clientSpanStream) Receive(msg any) error {
	err := s.ClientStream.Receive(msg)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			// Receive's error is the call's verdict: it beats a Send error.
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
		s.finish(nil)
	}
	return err
}

func (s *clientSpanStream) Close() error {
	err := s.ClientStream.Close()
	s.finish(nil)
	return err
}

// spanName is the procedure without its leading slash: "pkg.Service/Method".
func spanName(procedure string) string { return strings.TrimPrefix(procedure, "/") }

func rpcAttrs(procedure string) []attribute.KeyValue {
	service, method, _ := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	return []attribute.KeyValue{attrRPCSystem.String(rpcSystemConnect), attrRPCService.String(service), attrRPCMethod.String(method)}
}

// codeOf is the Connect code name of err ("ok" for nil), as the client sees it.
func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// serverFault reports whether a server span with code c failed on the server's
// side (semantic conventions: only these set an Error status on server spans).
func serverFault(c connect.Code) bool {
	switch c {
	case connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeUnimplemented,
		connect.CodeInternal, connect.CodeUnavailable, connect.CodeDataLoss:
		return true
	}
	return false
}

// headerCarrier adapts a Connect header to the propagator.
type headerCarrier struct{ h *connect.Header }

func (c headerCarrier) Get(key string) string { return c.h.Get(key) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, c.h.Len())
	for k := range c.h.All() {
		keys = append(keys, k)
	}
	return keys
}
