package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connectproto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/request"
)

// The server interceptor chain, outermost first:
//
//	request info -> recover -> telemetry (WithTelemetry) -> logging -> recover ->
//	lifetime -> authentication -> authorization -> validation ->
//	WithInterceptors... -> handler
//
// Request info (requestinfo.go) comes first so that everything after it, the logs
// included, has request.Info. Recover appears twice: the inner one turns a panic
// below logging into internal, so the call still gets its rpc log line; the outer
// one catches panics in telemetry or logging. Lifetime (limits.go) bounds the call
// before authentication, which may fetch keys. Authentication and authorization
// read only headers and the method's descriptor, so an unauthenticated or
// unauthorized caller is refused before its request body is read, decompressed or
// decoded. Before the chain, HTTP middleware runs (see WithMiddleware).

// recoverer turns a handler panic into CodeInternal with a fixed message. The panic
// value and stack go to the server log, never to the client.
func recoverer(log *slog.Logger) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.ErrorContext(ctx, "handler panic", "request_id", request.From(ctx).ID,
						"procedure", spec.Procedure, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = connect.NewError(connect.CodeInternal, "internal error")
				}
			}()
			return next(ctx, spec, stream)
		}
	}
}

// TokenVerifier checks a bearer token. *auth.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Caller, error)
}

// authenticate verifies the bearer token, if any, and puts the caller in the context.
// A missing or invalid token fails with CodeUnauthenticated and a message that does
// not say what was wrong with it. Public methods accept anonymous calls; on them an
// invalid token is ignored rather than refused, so a stale token in a browser cannot
// lock a patient out of logging in again.
func authenticate(log *slog.Logger, verifier TokenVerifier, rules *ruleCache) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			public := rules.rule(spec).GetPublic()
			var header string
			if info, ok := connect.CallInfoForServerContext(ctx); ok {
				header = info.RequestHeader().Get("Authorization")
			}
			if header == "" {
				if public {
					return next(ctx, spec, stream)
				}
				return connect.NewError(connect.CodeUnauthenticated, "missing bearer token")
			}
			// The scheme is case-insensitive (RFC 9110 section 11.1).
			scheme, token, ok := strings.Cut(header, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || verifier == nil {
				if public {
					return next(ctx, spec, stream)
				}
				return connect.NewError(connect.CodeUnauthenticated, "invalid bearer token")
			}
			caller, err := verifier.Verify(ctx, strings.TrimSpace(token))
			if err != nil {
				log.DebugContext(ctx, "token rejected", "procedure", spec.Procedure, "reason", err.Error())
				if public {
					return next(ctx, spec, stream)
				}
				return connect.NewError(connect.CodeUnauthenticated, "invalid bearer token")
			}
			if rec, ok := ctx.Value(callRecordKey{}).(*callRecord); ok {
				rec.caller = caller
			}
			return next(auth.WithCaller(ctx, caller), spec, stream)
		}
	}
}

// authorize applies the method's rule: deny when it has none, let anyone call public
// methods, and otherwise require one of the rule's roles. For a PATIENT calling a
// method whose rule takes the subject from the token, a request's subject_uuid field
// is set to the token's subject, and naming another subject is refused.
func authorize(rules *ruleCache) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			rule := rules.rule(spec)
			if rule == nil {
				return connect.NewError(connect.CodePermissionDenied, "method has no authorization rule")
			}
			if rule.GetPublic() {
				return next(ctx, spec, stream)
			}
			caller, ok := auth.CallerFrom(ctx)
			if !ok {
				return connect.NewError(connect.CodeUnauthenticated, "missing bearer token")
			}
			if !allows(rule, caller.Role) {
				return connect.Errorf(connect.CodePermissionDenied, "role %s may not call %s (allowed: %s)",
					auth.RoleName(caller.Role), spec.Procedure, describeRoles(rule))
			}
			if rule.GetSubjectFromToken() && caller.Role == authzv1.Role_ROLE_PATIENT {
				stream = &subjectStream{ServerStream: stream, subject: caller.Subject}
			}
			return next(ctx, spec, stream)
		}
	}
}

// subjectField is the request field that names the subject a call acts on.
const subjectField = "subject_uuid"

type subjectStream struct {
	connect.ServerStream
	subject string
}

func (s *subjectStream) Receive(msg any) error {
	if err := s.ServerStream.Receive(msg); err != nil {
		return err
	}
	m, ok := msg.(proto.Message)
	if !ok {
		return nil
	}
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(subjectField)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return nil
	}
	if named := r.Get(fd).String(); named != "" && named != s.subject {
		return connect.NewError(connect.CodePermissionDenied, "subject_uuid: patients may act only on their own subject")
	}
	r.Set(fd, protoreflect.ValueOfString(s.subject))
	return nil
}

// validation checks every received message against its protovalidate rules and
// fails with CodeInvalidArgument, a message naming each failing field, and a
// buf.validate.Violations error detail (field path, rule id, message).
func validation(v protovalidate.Validator) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			return next(ctx, spec, &validatingStream{ServerStream: stream, validator: v})
		}
	}
}

type validatingStream struct {
	connect.ServerStream
	validator protovalidate.Validator
}

func (s *validatingStream) Receive(msg any) error {
	if err := s.ServerStream.Receive(msg); err != nil {
		return err
	}
	m, ok := msg.(proto.Message)
	if !ok {
		return nil
	}
	return ValidationError(s.validator.Validate(m))
}

// ValidationError converts a protovalidate error into the Connect error TrialHub
// returns for bad input. It returns nil for nil.
func ValidationError(err error) error {
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return connect.NewError(connect.CodeInternal, "request validation failed").WithCause(err)
	}
	parts := make([]string, 0, len(verr.Violations))
	for _, v := range verr.Violations {
		field := protovalidate.FieldPathString(v.Proto.GetField())
		if field == "" {
			field = "(message)"
		}
		parts = append(parts, fmt.Sprintf("%s: %s [%s]", field, v.Proto.GetMessage(), v.Proto.GetRuleId()))
	}
	cerr := connect.NewError(connect.CodeInvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if detail, derr := connectproto.NewErrorDetail(verr.ToProto()); derr == nil {
		cerr = cerr.WithDetail(detail)
	}
	return cerr
}
