package client

import (
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoffFullJitter(t *testing.T) {
	const lo, hi = 50 * time.Millisecond, time.Second
	for attempt, ceiling := range map[int]time.Duration{
		0: 50 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: hi, 6: hi,
		30: hi, 62: hi, 63: hi, 1000: hi,
	} {
		var least, most time.Duration = math.MaxInt64, 0
		for range 2000 {
			d := backoff(lo, hi, attempt, nil)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceiling)
			}
			least, most = min(least, d), max(most, d)
		}
		// Full jitter spreads over the whole range; 2000 draws all landing in one
		// half has probability 2^-1999.
		if least > ceiling/2 || most < ceiling/2 {
			t.Errorf("attempt %d: draws within [%v, %v], want spread over [0, %v]", attempt, least, most, ceiling)
		}
	}
}

func TestBackoffDoesNotOverflow(t *testing.T) {
	// A large base shifted by many attempts overflows int64; the wait must still be
	// capped at max, not wrap to zero (a retry storm) or below.
	for _, attempt := range []int{20, 29, 40, 62, 63, 64} {
		var most time.Duration
		for range 200 {
			d := backoff(time.Minute, time.Hour, attempt, nil)
			if d < 0 || d > time.Hour {
				t.Fatalf("attempt %d: %v outside [0, 1h]", attempt, d)
			}
			most = max(most, d)
		}
		if most < 30*time.Minute {
			t.Errorf("attempt %d: longest of 200 draws %v, want spread up to the 1h cap", attempt, most)
		}
	}
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	const lo, hi = 50 * time.Millisecond, 10 * time.Second
	respond := func(status int, retryAfter string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}}
	}
	exact := map[string]struct {
		res  *http.Response
		want time.Duration
	}{
		"503 seconds":           {respond(503, "3"), 3 * time.Second},
		"429 seconds":           {respond(429, "2"), 2 * time.Second},
		"zero":                  {respond(503, "0"), 0},
		"capped at max":         {respond(503, "120"), hi},
		"huge capped at max":    {respond(503, "9999999999"), hi},
		"HTTP date in the past": {respond(503, "Sun, 06 Nov 1994 08:49:37 GMT"), 0},
	}
	for name, c := range exact {
		if got := backoff(lo, hi, 0, c.res); got != c.want {
			t.Errorf("%s: backoff %v, want %v", name, got, c.want)
		}
	}
	// An HTTP date has whole seconds: 5s ahead, formatted, is more than 4s ahead.
	date := time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)
	if got := backoff(lo, hi, 0, respond(503, date)); got < 3*time.Second || got > 5*time.Second {
		t.Errorf("HTTP date 5s ahead: backoff %v, want about 4-5s", got)
	}
	// Only 429 and 503 carry a wish worth honouring; others, and headers that do
	// not parse, get the jittered backoff of the attempt.
	for name, res := range map[string]*http.Response{
		"502":          respond(502, "3"),
		"504":          respond(504, "3"),
		"not a number": respond(503, "soon"),
		"negative":     respond(503, "-3"),
		"fraction":     respond(503, "1.5"),
	} {
		if got := backoff(lo, hi, 0, res); got < 0 || got > lo {
			t.Errorf("%s: backoff %v, want jitter within [0, %v]", name, got, lo)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"0":          0,
		"1":          time.Second,
		"120":        2 * time.Minute,
		"9999999999": math.MaxInt64 / time.Second * time.Second,
		// The three date forms RFC 9110 accepts, all in the past.
		"Sun, 06 Nov 1994 08:49:37 GMT":  0,
		"Sunday, 06-Nov-94 08:49:37 GMT": 0,
		"Sun Nov  6 08:49:37 1994":       0,
	} {
		got, ok := retryAfter(v)
		if !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, true", v, got, ok, want)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got, ok := retryAfter(future); !ok || got < 58*time.Minute || got > time.Hour {
		t.Errorf("retryAfter(an hour ahead) = %v, %v; want about 1h", got, ok)
	}
	for _, v := range []string{"", "-1", "1.5", " 1", "1s", "soon", "99999999999999999999", "2026-01-01T00:00:00Z"} {
		if got, ok := retryAfter(v); ok {
			t.Errorf("retryAfter(%q) = %v, true; want not ok", v, got)
		}
	}
}

func TestRetryableOutcome(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 400: false, 404: false, 408: false, 500: false, 501: false,
		429: true, 502: true, 503: true, 504: true,
	} {
		if got := retryableOutcome(&http.Response{StatusCode: status}, nil); got != want {
			t.Errorf("HTTP %d: retryable %v, want %v", status, got, want)
		}
	}
	if !retryableOutcome(nil, errors.New("connection reset by peer")) {
		t.Error("transport error: not retryable")
	}
}

func TestBudget(t *testing.T) {
	t.Run("starts full", func(t *testing.T) {
		b := newBudget(0.25, 10)
		for i := range 10 {
			if !b.withdraw() {
				t.Fatalf("withdrawal %d refused from a full bucket of 10", i+1)
			}
		}
		if b.withdraw() {
			t.Fatal("11th withdrawal allowed from a bucket of 10")
		}
	})
	t.Run("each call earns ratio", func(t *testing.T) {
		b := newBudget(0.25, 10)
		for range 10 {
			b.withdraw()
		}
		for range 3 {
			b.deposit()
		}
		if b.withdraw() {
			t.Fatal("retry allowed after 3 calls at 0.25: only 0.75 tokens")
		}
		b.deposit()
		if !b.withdraw() {
			t.Fatal("retry refused after 4 calls at 0.25")
		}
		if b.withdraw() {
			t.Fatal("second retry allowed on one token")
		}
	})
	t.Run("saves at most capacity", func(t *testing.T) {
		b := newBudget(0.5, 2)
		for range 100 {
			b.deposit()
		}
		if !b.withdraw() || !b.withdraw() {
			t.Fatal("a full bucket of 2 refused a retry")
		}
		if b.withdraw() {
			t.Fatal("bucket saved more than its capacity of 2")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		b := newBudget(0, 10)
		var granted atomic.Int32
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				b.deposit()
				if b.withdraw() {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := granted.Load(); n != 10 {
			t.Fatalf("%d retries granted from 10 tokens", n)
		}
	})
}
