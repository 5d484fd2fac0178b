package platform

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect/v2"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/logs"
	"github.com/trialhub/trialhub/services/platform/request"
)

// callRecord collects what inner interceptors learn about a call (the caller) for the
// log line the outer logging interceptor writes when the call ends.
type callRecord struct {
	caller auth.Caller
}

type callRecordKey struct{}

// logging writes one structured line per RPC: request id, the service that owns
// the procedure (Server.Own; the server's name for health, reflection and
// unowned methods), procedure, the code the client receives, duration, protocol
// and the caller's pseudonymous subject and role. It never logs messages, so no
// PII or answers reach the logs.
//
// The code is the client's: logging returns the handler's error as the wire
// verdict (see wireError), so the line, telemetry outside it and the client agree.
// Levels:
//
//   - ERROR: the server failed (internal, unknown, data_loss), including an error
//     that is not a *connect.Error and another service's verdict passed through.
//   - WARN: the call could not be served in time or capacity (unavailable,
//     deadline_exceeded, resource_exhausted): something to watch, not a bug.
//   - INFO: ok and every answer about the request itself (invalid_argument,
//     not_found, permission_denied, unauthenticated, canceled, ...).
//   - A unary call that took the slow-call threshold or longer (WithSlowCall,
//     default 500 ms) is logged at WARN at least, with "slow": true beside its
//     duration_ms.
//   - Routine calls (logs.Routine: health checks, reflection) that would be INFO
//     are DEBUG: a load balancer probing every second must not fill the log. A
//     routine call that fails with a server fault or is slow keeps its level.
//
// At ERROR and WARN the line carries "error": the error's text with the cause of
// every *connect.Error in it (connect's Error() omits causes). Causes stay in the
// server log; the client gets only the code and the public message.
func logging(log *slog.Logger, server string, slow time.Duration, owners *sync.Map) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			start := time.Now()
			rec := &callRecord{}
			err := wireError(next(context.WithValue(ctx, callRecordKey{}, rec), spec, stream))
			took := time.Since(start)
			code, level := "ok", slog.LevelInfo
			if err != nil {
				c := connect.CodeOf(err)
				code, level = c.String(), codeLevel(c)
			}
			isSlow := slow > 0 && took >= slow && spec.StreamType == connect.StreamTypeUnary
			switch {
			case isSlow:
				level = max(level, slog.LevelWarn)
			case level == slog.LevelInfo && logs.Routine(spec.Procedure):
				level = slog.LevelDebug
			}
			if !log.Enabled(ctx, level) {
				return err
			}
			service := server
			if owner, ok := owners.Load(spec.Procedure); ok {
				service = owner.(string)
			}
			attrs := make([]slog.Attr, 0, 12)
			if id := request.From(ctx).ID; id != "" {
				attrs = append(attrs, slog.String("request_id", id))
			}
			attrs = append(attrs,
				slog.String("service", service),
				slog.String("procedure", spec.Procedure),
				slog.String("code", code),
				slog.Float64("duration_ms", float64(took.Microseconds())/1000),
			)
			if isSlow {
				attrs = append(attrs, slog.Bool("slow", true))
			}
			if info, ok := connect.CallInfoForServerContext(ctx); ok && info.Protocol != "" {
				attrs = append(attrs, slog.String("protocol", info.Protocol))
			}
			if rec.caller.Subject != "" {
				attrs = append(attrs, slog.String("role", auth.RoleName(rec.caller.Role)))
				if rec.caller.Role == authzv1.Role_ROLE_PATIENT {
					attrs = append(attrs, slog.String("subject_uuid", rec.caller.Subject))
				} else {
					attrs = append(attrs, slog.String("actor", rec.caller.Subject))
				}
			}
			if err != nil && level > slog.LevelInfo {
				attrs = append(attrs, slog.String("error", errorText(err)))
			}
			log.LogAttrs(ctx, level, "rpc", attrs...)
			return err
		}
	}
}

// codeLevel is the log level of a call that ended with code (see logging).
func codeLevel(code connect.Code) slog.Level {
	switch code {
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss:
		return slog.LevelError
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

// wireError is the verdict the client receives for a handler's error, as
// connecthttp's transport would make it, with err kept as its local cause: a
// *connect.Error of this process keeps its code, message and details; another
// service's verdict (a remote error) becomes internal with no message; context
// errors become canceled or deadline_exceeded; anything else becomes unknown with no
// message. Returning it already made keeps every transport (HTTP, in-process) and
// everything outside the logger agreeing on the code.
func wireError(err error) error {
	if err == nil {
		return nil
	}
	if cerr, ok := errors.AsType[*connect.Error](err); ok && cerr != nil {
		if cerr.IsRemote() {
			return connect.NewError(connect.CodeInternal, "").WithCause(err)
		}
		return err
	}
	code := connect.CodeUnknown
	switch {
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, "").WithCause(err)
}

// errorText is err's text followed by the cause of each *connect.Error in it,
// which (*connect.Error).Error leaves out: "internal: could not load (cause: pq:
// relation does not exist)".
func errorText(err error) string {
	text := err.Error()
	if cerr, ok := errors.AsType[*connect.Error](err); ok && cerr != nil {
		if cause := cerr.Unwrap(); cause != nil {
			text += " (cause: " + errorText(cause) + ")"
		}
	}
	return text
}
