// Package request carries what the server knows about the request being served
// (its id, the procedure, where it came from) to code that records it, such as the
// audit trail, without that code depending on HTTP.
package request

import "context"

// Info describes one incoming request. The server fills it in before the handler
// runs; every field may be empty for work that did not start with a request (a
// background job, a seed).
type Info struct {
	// ID identifies the request in logs and audit events: the caller's X-Request-Id
	// when it sent a well-formed one, otherwise one the server made.
	ID string
	// Procedure is the RPC, such as /trialhub.trial.v1.TrialService/EnrollSubject.
	Procedure string
	// ClientAddr is the caller's network address (host only, no port).
	ClientAddr string
	// UserAgent is the caller's User-Agent header, truncated.
	UserAgent string
	// AppVersion is the caller's X-App-Version header (the mobile or web app
	// version), truncated.
	AppVersion string
	// TraceID is the W3C trace id of the request, when it is traced.
	TraceID string
}

type infoKey struct{}

// With returns a context that carries info.
func With(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// From returns the request info in ctx, or the zero Info.
func From(ctx context.Context) Info {
	info, _ := ctx.Value(infoKey{}).(Info)
	return info
}
