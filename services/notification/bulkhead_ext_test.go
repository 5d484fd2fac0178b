package notification_test

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

// gauge counts the requests a handler is serving at once, and the most it ever did.
type gauge struct {
	mu        sync.Mutex
	now, peak int
	next      http.Handler
}

func (g *gauge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.now++
	g.peak = max(g.peak, g.now)
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	g.next.ServeHTTP(w, r)
}

func (g *gauge) max() int { g.mu.Lock(); defer g.mu.Unlock(); return g.peak }

// A hanging vendor holds at most VendorConcurrency calls of a process, however
// many delivery jobs run.
func TestBulkheadBoundsCallsToAHangingVendor(t *testing.T) {
	v := fakevendor.New()
	t.Cleanup(v.Close)
	if err := v.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
		t.Fatal(err)
	}
	g := &gauge{next: v}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { v.Close(); srv.Close() })
	f := setup(t, notification.WithPushURL("http://"+ln.Addr().String()), notification.WithVendorConcurrency(2),
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
	if peak := g.max(); peak > 2 || peak == 0 {
		t.Fatalf("the hanging vendor held %d calls at once, want 1 or 2 (the bulkhead)", peak)
	}
	t.Logf("peak calls at the vendor: %d", g.max())
}
