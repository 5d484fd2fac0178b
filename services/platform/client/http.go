package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/trialhub/trialhub/services/platform/auth"
)

// HTTP returns a plain *http.Client for dep, for vendors that do not speak Connect
// (the SMS vendor, the push vendor), with what New gives an RPC client:
//
//   - dep.Timeout bounds each request, all attempts and reading the body included
//     (a caller's earlier deadline wins). Leave the client's own Timeout unset.
//   - Safe requests are retried (go-retryablehttp) on transport errors and 429,
//     502, 503, 504, with backoff, Retry-After and the retry budget: GET, HEAD,
//     OPTIONS, PUT and DELETE, and requests with an Idempotency-Key header, whose
//     body can be replayed (http.NewRequest sets GetBody for in-memory bodies).
//     Others are sent exactly once.
//   - The circuit breaker counts each request once, after its last attempt:
//     transport errors, 429 and 5xx are failures, timeouts as Breaker says. While
//     open, requests fail at once without touching the network, with an error
//     wrapping ErrOpen.
//   - WithTokens sets "Authorization: Bearer <token>" on requests without an
//     Authorization header; WithRoundTripper replaces the transport under the
//     retries, WithLogger the breaker's logger. Other options are New's only.
//
// Requests name their full URL (dep.BaseURL and a path); dep.Protocol is ignored.
// Build one client per vendor at start and share it: the breaker and the retry
// budget belong to it.
func HTTP(dep Dependency, opts ...Option) *http.Client {
	dep = dep.withDefaults()
	o := newOptions(opts)
	base := o.transport
	if base == nil {
		base = defaultTransport(ProtocolConnect) // HTTP/1.1 and HTTP/2
	}
	return &http.Client{Transport: &guarded{
		timeout: dep.Timeout,
		breaker: newBreaker(dep, o.log, o.breakers),
		tokens:  o.tokens,
		next:    newRetrier(dep, base, safeHTTP, nil),
	}}
}

// guarded is HTTP's transport: token, breaker and timeout above the retries.
type guarded struct {
	timeout time.Duration
	breaker *breaker
	tokens  auth.TokenSource
	next    http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (g *guarded) RoundTrip(req *http.Request) (*http.Response, error) {
	caller := req.Context()
	out := req
	if g.tokens != nil && req.Header.Get("Authorization") == "" {
		token, err := g.tokens.Token(caller)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("%s: bearer token: %w", g.breaker.name, err)
		}
		out = req.Clone(caller)
		out.Header.Set("Authorization", "Bearer "+token)
	}
	c, err := g.breaker.allow(caller, true)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	ctx, cancel := caller, context.CancelFunc(func() {})
	if d, ok := caller.Deadline(); !ok || time.Until(d) > g.timeout {
		ctx, cancel = context.WithTimeout(caller, g.timeout)
	}
	res, err := g.next.RoundTrip(out.WithContext(ctx))
	if err != nil {
		switch {
		case errors.Is(caller.Err(), context.Canceled):
			c.end(cancelled)
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			c.end(timedOut)
		default:
			c.end(failed)
		}
		cancel()
		return nil, err
	}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 {
		c.end(failed)
	} else {
		c.end(succeeded)
	}
	res.Body = &cancelOnEOF{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// cancelOnEOF releases a request's timeout once its body is read or closed.
type cancelOnEOF struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.cancel()
	}
	return n, err
}

func (b *cancelOnEOF) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}
