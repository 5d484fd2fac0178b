package client

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/hashicorp/go-retryablehttp"
)

// retrier is the HTTP round tripper under every client: calls the Connect layer
// marked safe go through go-retryablehttp, all others straight to the network, sent
// exactly once.
type retrier struct {
	once  http.RoundTripper
	retry http.RoundTripper
	spend *budget
}

func newRetrier(dep Dependency, base http.RoundTripper) *retrier {
	b := newBudget(dep.RetryBudget, 10)
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: base}
	rc.Logger = nil
	rc.RetryMax = dep.MaxAttempts - 1
	rc.RetryWaitMin = dep.BackoffBase
	rc.RetryWaitMax = dep.BackoffMax
	rc.CheckRetry = func(ctx context.Context, res *http.Response, err error) (bool, error) {
		// A caller that stopped waiting gets what there is; returning ctx.Err()
		// here would hand net/http a response and an error at once, and it would
		// drop the response without closing its body.
		if !retryableOutcome(res, err) || ctx.Err() != nil {
			return false, nil
		}
		// go-retryablehttp asks before it checks RetryMax, so count attempts here:
		// after the last one no retry follows, and none must be paid for.
		if s, ok := ctx.Value(retryStateKey{}).(*retryState); ok {
			s.attempts++
			if s.attempts >= dep.MaxAttempts {
				return false, nil
			}
		}
		return b.withdraw(), nil
	}
	rc.Backoff = backoff
	// Hand the last response or error to connect unchanged, so a 503 still becomes
	// CodeUnavailable rather than an opaque "giving up" error.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &retrier{once: base, retry: &retryablehttp.RoundTripper{Client: rc}, spend: b}
}

// RoundTrip implements http.RoundTripper.
func (r *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	r.spend.deposit()
	rt := r.once
	if retryable(req.Context()) && (req.GetBody != nil || req.Body == nil) {
		rt = r.retry
	}
	res, err := rt.RoundTrip(req)
	return res, peerFailure(req.Context(), err)
}

// peerFailure makes a connection the dependency reset or broke read as its
// failure. Connect maps ECONNRESET and EPIPE to CodeCanceled, as if our caller had
// given up, which would hide them from the breaker (it excludes cancellations).
func peerFailure(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return connect.NewError(connect.CodeUnavailable, err.Error()).WithCause(err)
	}
	return err
}

// retryableOutcome reports whether an attempt's outcome is worth another attempt:
// no response at all (connection refused, reset, timed out at the transport), or a
// status that means the request was not processed (429 Too Many Requests, 502 Bad
// Gateway, 503 Service Unavailable, 504 Gateway Timeout).
func retryableOutcome(res *http.Response, err error) bool {
	if err != nil {
		return true
	}
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff waits as the server asks (Retry-After on 429 and 503, up to max) or else
// exponentially with full jitter: a random duration in [0, min(max, min*2^attempt)].
func backoff(lo, hi time.Duration, attempt int, res *http.Response) time.Duration {
	if res != nil && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(res.Header.Get("Retry-After")); ok {
			return min(d, hi)
		}
	}
	ceiling := hi
	if attempt < 63 && lo <= hi>>attempt { // lo<<attempt fits under hi, no overflow
		ceiling = lo << attempt
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		// Clamp so that a huge value cannot overflow into a negative wait.
		return time.Duration(min(int64(s), math.MaxInt64/int64(time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// budget is a token bucket that limits retries to a fraction of calls: each call
// deposits ratio tokens, each retry withdraws one, and at most capacity are saved.
// It starts full so that a brief blip right after start is still retried.
type budget struct {
	mu       sync.Mutex
	ratio    float64
	capacity float64
	tokens   float64
}

func newBudget(ratio, capacity float64) *budget {
	return &budget{ratio: ratio, capacity: capacity, tokens: capacity}
}

func (b *budget) deposit() {
	b.mu.Lock()
	b.tokens = min(b.capacity, b.tokens+b.ratio)
	b.mu.Unlock()
}

func (b *budget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
