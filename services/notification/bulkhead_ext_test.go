package notification_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

// countingVendor counts the pushes in flight at once, and the most it ever saw.
type countingVendor struct {
	mu        sync.Mutex
	now, peak int
	next      notification.Vendor
}

func (c *countingVendor) Send(ctx context.Context, key string, p notification.Push) error {
	c.mu.Lock()
	c.now++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	return c.next.Send(ctx, key, p)
}

func (c *countingVendor) max() int { c.mu.Lock(); defer c.mu.Unlock(); return c.peak }

// A hanging vendor holds at most VendorConcurrency calls of a process, however
// many delivery jobs run. (Counted in the process: the vendor's own count lags
// by the moment it takes to notice a client gave up.)
func TestBulkheadBoundsCallsToAHangingVendor(t *testing.T) {
	v, url := fakevendor.Start(t)
	if err := v.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
		t.Fatal(err)
	}
	counting := &countingVendor{next: notification.NewHTTPVendor(&http.Client{Timeout: 500 * time.Millisecond}, url)}
	f := setup(t, notification.WithVendor(counting), notification.WithVendorConcurrency(2),
		notification.WithWorkers(8), notification.WithMaxAttempts(25))
	ids := f.sendMany(t, 12, "bulkhead")
	eventually(t, "attempts on every notification", func() bool {
		for _, n := range f.statuses(t, ids) {
			if n.GetAttemptCount() == 0 && n.GetStatus() != stRetrying {
				return false
			}
		}
		return true
	})
	if peak := counting.max(); peak > 2 || peak == 0 {
		t.Fatalf("%d calls to the hanging vendor at once, want 1 or 2 (the bulkhead)", peak)
	}
	t.Logf("peak calls in flight: %d", counting.max())
}
