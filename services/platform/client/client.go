// Package client builds the clients TrialHub services call each other (and outside
// vendors) with: generated Connect clients over gRPC, with a per-dependency timeout,
// safe retries, a retry budget, a circuit breaker and a SERVICE token on every call.
//
//	dep := client.Service("trial", "http://trial:8080")
//	trials := trialv1connect.NewTrialServiceClient(client.New(dep, client.WithTokens(tokens)))
//
// # Which layer retries
//
// Exactly one layer decides retries: the HTTP layer, through
// github.com/hashicorp/go-retryablehttp. It sees what is safe to judge there:
// transport errors (connection refused or reset, no response) and HTTP 429, 502, 503
// and 504 (proxies, load balancers, a server that is shedding load), with Retry-After
// honoured. A gRPC error status arrives in trailers behind HTTP 200, so the HTTP layer
// cannot see it, and the Connect layer above deliberately does not retry it: a server
// that answered with a status has run the handler, and two layers retrying the same
// call would multiply attempts (3 x 3). The Connect layer only marks which calls may
// be retried at all: methods marked NO_SIDE_EFFECTS or IDEMPOTENT in the contract,
// and requests that carry an idempotency_key; anything else is sent exactly once.
//
// Every attempt runs under one deadline, set by the dependency's timeout (or an
// earlier deadline of the caller) and propagated on the wire (grpc-timeout), and a
// retry budget caps retries at a fraction of calls so a struggling dependency is not
// hit by a retry storm. The circuit breaker sits above the retries and counts whole
// calls.
package client

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/trialhub/trialhub/services/platform/auth"
)

// Dependency is everything about calling one dependency. Zero fields take the
// defaults documented on each; Service and Vendor fill in the rest.
type Dependency struct {
	// Name identifies the dependency in config, logs and errors: "trial", "push-vendor".
	Name string
	// BaseURL is where the dependency listens: "http://trial:8080".
	BaseURL string
	// Timeout bounds a whole call, all attempts included, streams to their end.
	// Default 2000 ms for services (Service) and 500 ms for external vendors
	// (Vendor). A caller's earlier deadline wins; a long export stream wants a
	// client of its own with a longer Timeout.
	Timeout time.Duration
	// MaxAttempts is the most attempts of one call, the first included. Default 3;
	// 1 turns retries off.
	MaxAttempts int
	// BackoffBase and BackoffMax bound the exponential backoff with full jitter
	// between attempts. Defaults 50 ms and 1 s.
	BackoffBase, BackoffMax time.Duration
	// RetryBudget is the fraction of calls that may be retried, averaged over time
	// (a token bucket: each call earns RetryBudget tokens, each retry spends one,
	// at most 10 saved). Default 0.2.
	RetryBudget float64
	// Breaker configures the circuit breaker.
	Breaker Breaker
	// Protocol is the wire protocol: "grpc" (default, for service-to-service),
	// "connect" or "grpcweb".
	Protocol string
}

// Service returns the defaults for another TrialHub service.
func Service(name, baseURL string) Dependency {
	return Dependency{Name: name, BaseURL: baseURL, Timeout: 2000 * time.Millisecond}
}

// Vendor returns the defaults for an external vendor (the push service): a shorter
// timeout, because a slow vendor must not hold our workers.
func Vendor(name, baseURL string) Dependency {
	return Dependency{Name: name, BaseURL: baseURL, Timeout: 500 * time.Millisecond}
}

func (d Dependency) withDefaults() Dependency {
	if d.Timeout <= 0 {
		d.Timeout = 2000 * time.Millisecond
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 3
	}
	if d.BackoffBase <= 0 {
		d.BackoffBase = 50 * time.Millisecond
	}
	if d.BackoffMax <= 0 {
		d.BackoffMax = time.Second
	}
	if d.RetryBudget <= 0 {
		d.RetryBudget = 0.2
	}
	if d.Protocol == "" {
		d.Protocol = "grpc"
	}
	d.Breaker = d.Breaker.withDefaults()
	return d
}

type options struct {
	tokens     auth.TokenSource
	transport  http.RoundTripper
	connection connect.Transport
	log        *slog.Logger
}

// Option configures New.
type Option func(*options)

// WithTokens sets where the SERVICE bearer token for each call comes from.
// Default: no token (only public methods can be called).
func WithTokens(ts auth.TokenSource) Option { return func(o *options) { o.tokens = ts } }

// WithRoundTripper replaces the HTTP transport under the retry layer (tests use it
// to inject faults). Default: an HTTP/2-without-TLS transport for gRPC, HTTP/1.1 and
// HTTP/2 otherwise.
func WithRoundTripper(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithConnectTransport sends calls through a connect transport instead of HTTP,
// such as connectinprocess in the single-process dev stack. The timeout, breaker
// and token still apply; HTTP retries do not (there is no network to fail).
func WithConnectTransport(t connect.Transport) Option {
	return func(o *options) { o.connection = t }
}

// WithLogger sets the logger for breaker state changes. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New returns a connect client for dep, to hand to a generated NewXServiceClient.
func New(dep Dependency, opts ...Option) *connect.Client {
	dep = dep.withDefaults()
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	transport := o.connection
	if transport == nil {
		base := o.transport
		if base == nil {
			base = defaultTransport(dep.Protocol)
		}
		httpClient := &http.Client{Transport: newRetrier(dep, base)}
		var protocol []connecthttp.Option
		switch dep.Protocol {
		case "grpc":
			protocol = append(protocol, connecthttp.WithGRPC())
		case "grpcweb":
			protocol = append(protocol, connecthttp.WithGRPCWeb())
		}
		transport = connecthttp.NewTransport(httpClient, dep.BaseURL, protocol...)
	}
	breaker := newBreaker(dep, o.log)
	return connect.NewClient(transport,
		breaker.interceptor(),
		deadline(dep.Timeout),
		bearer(o.tokens),
		markRetryable(),
	)
}

func defaultTransport(protocol string) *http.Transport {
	protocols := new(http.Protocols)
	if protocol == "grpc" {
		// gRPC needs HTTP/2; inside the cluster it runs without TLS (h2c prior knowledge).
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		protocols.SetHTTP2(true)
	}
	return &http.Transport{
		Protocols:           protocols,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// deadline bounds every call by timeout unless the caller's deadline is earlier.
func deadline(timeout time.Duration) connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				stream, err := next(ctx, spec)
				if err != nil {
					cancel()
					return nil, err
				}
				return &cancelOnClose{ClientStream: stream, cancel: cancel}, nil
			}
			return next(ctx, spec)
		}
	}
}

// cancelOnClose releases the call's timeout when the stream ends.
type cancelOnClose struct {
	connect.ClientStream
	cancel context.CancelFunc
}

func (s *cancelOnClose) Receive(msg any) error {
	err := s.ClientStream.Receive(msg)
	if err != nil {
		s.cancel()
	}
	return err
}

func (s *cancelOnClose) Close() error {
	defer s.cancel()
	return s.ClientStream.Close()
}

// bearer attaches the service's token to every call. It sets the header on the
// call's own CallInfo (connect attaches one before the interceptors run), so the
// request headers the caller set are sent and the response metadata reaches them.
// As a caller may reuse that CallInfo for the next call, to another dependency, a
// client without tokens removes the header rather than send another's token on.
func bearer(tokens auth.TokenSource) connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			info, ok := connect.CallInfoForClientContext(ctx)
			if !ok {
				ctx, info = connect.NewClientContext(ctx)
			}
			if tokens == nil {
				info.RequestHeader().Delete("Authorization")
				return next(ctx, spec)
			}
			token, err := tokens.Token(ctx)
			if err != nil {
				return nil, connect.NewError(connect.CodeUnauthenticated, "no service token").WithCause(err)
			}
			info.RequestHeader().Set("Authorization", "Bearer "+token)
			return next(ctx, spec)
		}
	}
}

// retryState tells the HTTP layer whether the call in flight may be retried. It is
// set by the Connect layer, which knows the method and sees the request message,
// before the HTTP request is made (unary and server-streaming requests are sent
// when their one message is). The HTTP layer counts the call's attempts in it.
type retryState struct {
	safe     bool
	attempts int
}

type retryStateKey struct{}

// idempotencyKeyField is the request field that makes a write safe to retry.
const idempotencyKeyField = "idempotency_key"

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

func retryable(ctx context.Context) bool {
	s, ok := ctx.Value(retryStateKey{}).(*retryState)
	return ok && s.safe
}
