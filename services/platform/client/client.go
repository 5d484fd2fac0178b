// Package client builds the clients TrialHub services call each other (and outside
// vendors) with: generated Connect clients (New) and plain HTTP clients for vendors
// that do not speak Connect (HTTP), each with a per-dependency timeout, safe
// retries, a retry budget, a circuit breaker and, where set, a bearer token.
//
//	dep := client.Service("trial", "http://trial:8080")
//	trials := trialv1connect.NewTrialServiceClient(client.New(dep, client.WithTokens(tokens)))
//	sms := client.HTTP(client.Vendor("sms-vendor", "https://sms.example"))
//
// # Which layer retries
//
// Exactly one layer decides retries: the HTTP layer, through
// github.com/hashicorp/go-retryablehttp. It sees what is safe to judge there:
// transport errors (connection refused or reset, no response) and HTTP 429, 502, 503
// and 504 from proxies, load balancers or a server that is shedding load, with
// Retry-After honoured. It never retries the RPC server's own answer: a gRPC status
// in trailers behind HTTP 200, a gRPC-Web grpc-status header, or a Connect unary
// error (HTTP 503/429/504 with a JSON body naming a Connect code). A server that
// answered with a status has run the handler, and two layers retrying the same
// call would multiply attempts (3 x 3), across hops too. The Connect layer only
// marks which calls may be retried at all: methods marked NO_SIDE_EFFECTS or
// IDEMPOTENT in the contract, and requests that carry an idempotency_key; anything
// else is sent exactly once. HTTP's clients retry GET, HEAD, OPTIONS, PUT and
// DELETE, and requests carrying an Idempotency-Key header.
//
// Every attempt runs under one deadline, set by the dependency's timeout (or an
// earlier deadline of the caller) and propagated on the wire (grpc-timeout), and a
// retry budget caps retries at a fraction of calls so a struggling dependency is not
// hit by a retry storm. The circuit breaker sits above the retries and counts whole
// calls; interceptors given with WithInterceptors sit above the breaker and see each
// call once, as its caller does.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"

	"github.com/trialhub/trialhub/services/platform/auth"
)

// Protocol is the wire protocol a client speaks to a dependency.
type Protocol string

// The protocols a TrialHub server answers on one port.
const (
	// ProtocolGRPC is gRPC over HTTP/2 without TLS (h2c): service to service.
	ProtocolGRPC Protocol = "grpc"
	// ProtocolConnect is the Connect protocol over HTTP/1.1 or HTTP/2.
	ProtocolConnect Protocol = "connect"
	// ProtocolGRPCWeb is gRPC-Web over HTTP/1.1 or HTTP/2.
	ProtocolGRPCWeb Protocol = "grpcweb"
)

// parseProtocol returns the protocol named s ("grpc", "connect" or "grpcweb"), or
// an error naming the ones there are.
func parseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case ProtocolGRPC, ProtocolConnect, ProtocolGRPCWeb:
		return p, nil
	}
	return "", fmt.Errorf("unknown protocol %q: want %s, %s or %s", s, ProtocolGRPC, ProtocolConnect, ProtocolGRPCWeb)
}

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
	// Protocol is the wire protocol of New's clients. Default ProtocolGRPC.
	// HTTP's clients speak plain HTTP and ignore it.
	Protocol Protocol
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
		d.Protocol = ProtocolGRPC
	}
	d.Breaker = d.Breaker.withDefaults()
	return d
}

// New returns a connect client for dep, to hand to a generated NewXServiceClient.
// Build one per dependency at start and share it: the breaker and the retry budget
// belong to the client. New panics when dep.Protocol is not one of the Protocol
// constants (FromEnv refuses such config with an error).
//
// Around each call, outermost first: the interceptors of WithInterceptors, the
// circuit breaker, the dependency's timeout, the bearer token, the marking of
// calls safe to retry; under them the HTTP layer's retries.
func New(dep Dependency, opts ...Option) *connect.Client {
	dep = dep.withDefaults()
	if _, err := parseProtocol(string(dep.Protocol)); err != nil {
		panic(fmt.Sprintf("client: dependency %s: %v", dep.Name, err))
	}
	o := newOptions(opts)
	transport := o.connection
	if transport == nil {
		base := o.transport
		if base == nil {
			base = defaultTransport(dep.Protocol)
		}
		httpClient := &http.Client{Transport: peerFailures{newRetrier(dep, base, safeRPC, rpcAnswer)}}
		var protocol []connecthttp.Option
		switch dep.Protocol {
		case ProtocolGRPC:
			protocol = append(protocol, connecthttp.WithGRPC())
		case ProtocolGRPCWeb:
			protocol = append(protocol, connecthttp.WithGRPCWeb())
		}
		transport = connecthttp.NewTransport(httpClient, dep.BaseURL, protocol...)
	}
	chain := append(o.interceptors[:len(o.interceptors):len(o.interceptors)],
		newBreaker(dep, o.log, o.breakers).interceptor(),
		deadline(dep.Timeout),
		bearer(o.tokens),
		markRetryable(),
	)
	return connect.NewClient(transport, chain...)
}

func defaultTransport(protocol Protocol) *http.Transport {
	protocols := new(http.Protocols)
	if protocol == ProtocolGRPC {
		// gRPC needs HTTP/2; inside the cluster it runs without TLS (h2c prior knowledge).
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		protocols.SetHTTP2(true)
	}
	return &http.Transport{
		Protocols:           protocols,
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// peerFailures makes a connection the dependency reset or broke read as its
// failure. Connect maps ECONNRESET and EPIPE to CodeCanceled, as if our caller had
// given up, which would hide them from the breaker (it excludes cancellations).
type peerFailures struct{ next http.RoundTripper }

func (p peerFailures) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := p.next.RoundTrip(req)
	if err == nil || req.Context().Err() != nil {
		return res, err
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return res, connect.NewError(connect.CodeUnavailable, err.Error()).WithCause(err)
	}
	return res, err
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
