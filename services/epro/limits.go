package epro

// The per-method request caps of the contract (MethodLimits.max_request_bytes
// in trialhub/epro/v1/limits.proto), enforced by this service.
//
// The handlers are registered on a dispatcher of their own whose one
// interceptor knows each method's cap; the kit's server dispatches to it, so
// the kit's chain (authentication, authorization, validation) runs first as for
// every service. The cap is checked on the encoded size of the request message
// after decompression, as the contract states it: a Connect GET's message
// before anything is read, every other request as soon as the transport has
// read it, before the handler sees it. The server-wide cap (4 MiB) still stops
// anything larger before it is read at all, so a request between a method's cap
// and 4 MiB is decoded once and then refused; one that also breaks a field rule
// is refused by the validation that runs on receipt (INVALID_ARGUMENT).

import (
	"context"
	"encoding/base64"
	"fmt"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
)

// register registers svc's handlers on server, each behind its request cap.
func register(server *connect.Server, svc eprov1connect.EproServiceHandler) {
	caps := map[string]int{}
	inner := connect.NewServer(requestCaps(caps))
	eprov1connect.RegisterEproServiceHandler(inner, svc)
	for spec := range inner.Specs() {
		caps[spec.Procedure] = maxRequestBytes(spec)
		server.Register(connect.Method{Spec: spec, Handler: func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			info, _ := connect.CallInfoForServerContext(ctx)
			return inner.Call(ctx, spec.Procedure, info, stream)
		}})
	}
}

// maxRequestBytes is the method's cap from its limits option; 0 means none of
// its own (the server's).
func maxRequestBytes(spec connect.Spec) int {
	md, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return 0
	}
	limits, ok := proto.GetExtension(md.Options(), eprov1.E_Limits).(*eprov1.MethodLimits)
	if !ok {
		return 0
	}
	return int(limits.GetMaxRequestBytes())
}

func requestCaps(caps map[string]int) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			limit := caps[spec.Procedure]
			if limit <= 0 {
				return next(ctx, spec, stream)
			}
			if n, ok := getMessageSize(ctx); ok && n > limit {
				return tooLarge(n, limit)
			}
			return next(ctx, spec, &cappedStream{ServerStream: stream, ctx: ctx, limit: limit})
		}
	}
}

// getMessageSize is the encoded size of a Connect GET's message, from its query.
func getMessageSize(ctx context.Context) (int, bool) {
	info, ok := connecthttp.ServerInfoForContext(ctx)
	if !ok || info.HTTPMethod() != "GET" {
		return 0, false
	}
	q := info.HTTPGetQueryParams()
	msg := q.Get("message")
	if q.Get("base64") == "1" {
		return base64.RawURLEncoding.DecodedLen(len(msg)), true
	}
	return len(msg), true
}

// cappedStream refuses a request message larger than the cap.
type cappedStream struct {
	connect.ServerStream
	ctx   context.Context
	limit int
}

func (s *cappedStream) Receive(msg any) error {
	if err := s.ServerStream.Receive(msg); err != nil {
		return err
	}
	n := 0
	if info, ok := connect.CallInfoForServerContext(s.ctx); ok {
		n = info.ReceiveStats.Size
	}
	if m, ok := msg.(proto.Message); ok && n == 0 {
		n = proto.Size(m) // not over a transport that counts (in-process)
	}
	if n > s.limit {
		return tooLarge(n, s.limit)
	}
	return nil
}

func tooLarge(n, limit int) error {
	return connect.NewError(connect.CodeResourceExhausted,
		fmt.Sprintf("request of %d bytes is larger than this method's max_request_bytes of %d (MethodLimits in the contract)", n, limit))
}
