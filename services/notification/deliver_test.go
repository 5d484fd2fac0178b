package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform/client"
)

func TestRetryPlanBacksOffWithJitterAndHonoursRetryAfter(t *testing.T) {
	p := newRetryPlan(time.Second, 30*time.Second)
	for attempt, step := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 9: 30 * time.Second} {
		for range 200 {
			d := p.after(attempt, 0)
			if d < step/2 || d >= step {
				t.Fatalf("attempt %d: wait %v outside [%v, %v)", attempt, d, step/2, step)
			}
		}
	}
	if d := p.after(1, 10*time.Second); d != 10*time.Second {
		t.Fatalf("Retry-After 10s: wait %v", d)
	}
}

func TestSanitiseKeepsStatusAndCodeOnly(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&VendorError{Outcome: Transient, Status: 503}, "push vendor: HTTP 503"},
		{&VendorError{Outcome: Transient, Status: 429, RetryAfter: 2 * time.Second}, "push vendor: HTTP 429, retry after 2s"},
		{&VendorError{Outcome: TokenInvalid, Status: 410, Code: "Unregistered"}, "push vendor: HTTP 410 (Unregistered)"},
		{&VendorError{Outcome: Transient, Cause: "timeout"}, "push vendor: timeout"},
		{fmt.Errorf("push-vendor: %w", client.ErrOpen), "push vendor: circuit breaker open"},
		{fmt.Errorf(`Post "https://push.example/v1?key=s3cret": %w`, context.DeadlineExceeded), "push vendor: timeout"},
		{errors.New(`dial tcp 10.0.0.1:443: token abc`), "delivery error"},
	} {
		if got := sanitise(tc.err); got != tc.want {
			t.Errorf("sanitise(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, body := range []string{`{"code":"https://x.example/y"}`, `{"field":"token abc"}`, `{"code":"` + strings.Repeat("a", 65) + `"}`} {
		if c := vendorCode([]byte(body)); c != "" {
			t.Errorf("vendorCode(%s) = %q, want nothing", body, c)
		}
	}
}
