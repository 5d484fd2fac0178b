package client

import (
	"log/slog"
	"net/http"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/platform/auth"
)

type options struct {
	tokens       auth.TokenSource
	transport    http.RoundTripper
	connection   connect.Transport
	interceptors []connect.ClientInterceptor
	log          *slog.Logger
	breakers     *BreakerMetrics
}

func newOptions(opts []Option) options {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Option configures New and HTTP.
type Option func(*options)

// WithTokens sets where the bearer token for each call comes from: the SERVICE
// token for TrialHub services, an API key for a vendor. HTTP's clients set it only
// on requests without an Authorization header. Default: no token (only public
// methods can be called).
func WithTokens(ts auth.TokenSource) Option { return func(o *options) { o.tokens = ts } }

// WithRoundTripper replaces the HTTP transport under the retry layer (a test's
// fault injector, a TLS-configured transport for a vendor). Default: an
// HTTP/2-without-TLS transport for gRPC, HTTP/1.1 and HTTP/2 otherwise.
func WithRoundTripper(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithConnectTransport makes New send calls through a connect transport instead of
// HTTP, such as connectinprocess in the single-process dev stack. The interceptors,
// timeout, breaker and token still apply; HTTP retries do not (there is no network
// to fail). HTTP ignores it.
func WithConnectTransport(t connect.Transport) Option {
	return func(o *options) { o.connection = t }
}

// WithInterceptors adds interceptors to New's clients (HTTP ignores them), for
// tracing and metrics. They run outermost, first given first, above the circuit
// breaker and the timeout: they see each call once, as its caller does, with its
// final outcome after all retries, and the breaker's fast failures too (a span or
// a metric must show a refused call), never single attempts. Default none.
func WithInterceptors(interceptors ...connect.ClientInterceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, interceptors...) }
}

// WithLogger sets the logger for breaker state changes. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }
