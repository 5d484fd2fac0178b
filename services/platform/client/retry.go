package client

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// retrier is the HTTP round tripper under every client: requests that safe allows
// go through go-retryablehttp, all others straight to the network, sent exactly
// once.
type retrier struct {
	once  http.RoundTripper
	retry http.RoundTripper
	spend *budget
	safe  func(*http.Request) bool
}

// attemptsKey holds the attempt count of the request in flight.
type attemptsKey struct{}

// newRetrier retries the requests safe allows, on transport errors and on
// 429/502/503/504 answers that answered does not claim as the server's own.
func newRetrier(dep Dependency, base http.RoundTripper, safe func(*http.Request) bool, answered func(*http.Response) bool) *retrier {
	b := newBudget(dep.RetryBudget, 10)
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{
		Transport: base,
		// Redirects are the outer http.Client's to follow, under its policy.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
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
		if err == nil && answered != nil && answered(res) {
			return false, nil
		}
		// go-retryablehttp asks before it checks RetryMax, so count attempts here:
		// after the last one no retry follows, and none must be paid for.
		if n, ok := ctx.Value(attemptsKey{}).(*int); ok {
			*n++
			if *n >= dep.MaxAttempts {
				return false, nil
			}
		}
		return b.withdraw(), nil
	}
	rc.Backoff = backoff
	// Hand the last response or error to the caller unchanged, so a 503 still
	// becomes CodeUnavailable rather than an opaque "giving up" error.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &retrier{once: base, retry: &retryablehttp.RoundTripper{Client: rc}, spend: b, safe: safe}
}

// RoundTrip implements http.RoundTripper.
func (r *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	r.spend.deposit()
	if !r.safe(req) || (req.GetBody == nil && req.Body != nil && req.Body != http.NoBody) {
		return r.once.RoundTrip(req)
	}
	attempts := 0
	return r.retry.RoundTrip(req.WithContext(context.WithValue(req.Context(), attemptsKey{}, &attempts)))
}

// retryableOutcome reports whether an attempt's outcome may be worth another
// attempt: no response at all (connection refused, reset, timed out at the
// transport), or a status that, from a proxy or load balancer, means the request
// was not processed (429 Too Many Requests, 502 Bad Gateway, 503 Service
// Unavailable, 504 Gateway Timeout).
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
