package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeIssuer is a FetchFunc whose answers a test controls: the keys it serves,
// whether it is down, and (when gate is set) a fetch that blocks until released.
type fakeIssuer struct {
	mu      sync.Mutex
	keys    []PublicKey
	down    bool
	gate    chan struct{} // when non-nil, each fetch waits for it to be closed
	started chan struct{} // receives once per fetch that began, when non-nil
	fetches atomic.Int32
	ctxErrs []error // each fetch's ctx.Err() when it answered
}

func (f *fakeIssuer) fetch(ctx context.Context) ([]PublicKey, error) {
	f.fetches.Add(1)
	f.mu.Lock()
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	if f.down {
		return nil, errors.New("issuer down")
	}
	return f.keys, nil
}

func testKey(t *testing.T) PublicKey {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// waitIdle waits until no fetch is running, so counts are settled.
func waitIdle(t *testing.T, r *RemoteKeys) {
	t.Helper()
	r.mu.Lock()
	done := r.inflight
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

func TestRemoteKeysIssuerDownDoesNotStormAndServesStaleKeys(t *testing.T) {
	key := testKey(t)
	issuer := &fakeIssuer{keys: []PublicKey{key}}
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r := NewRemoteKeys(issuer.fetch, time.Minute, 10*time.Second)
	r.now = clk.Now
	ctx := context.Background()

	if _, err := r.PublicKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	// The issuer goes down and the set grows older than maxAge.
	issuer.mu.Lock()
	issuer.down = true
	issuer.mu.Unlock()
	clk.Add(2 * time.Minute)
	for i := range 100 {
		got, err := r.PublicKey(ctx, key.ID)
		if err != nil || !got.Equal(key.Key) {
			t.Fatalf("lookup %d of a known kid while the issuer is down: %v", i, err)
		}
		waitIdle(t, r)
	}
	if n := issuer.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for 100 lookups within minRefresh of a failed fetch, want 2 (the first, one retry)", n)
	}
	// Unknown kids while down are gated the same way.
	for range 20 {
		if _, err := r.PublicKey(ctx, "made-up"); err == nil {
			t.Fatal("unknown kid accepted")
		}
		waitIdle(t, r)
	}
	if n := issuer.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 20 unknown kids within minRefresh, want still 2", n)
	}
	// Once minRefresh has passed, one more attempt; when the issuer is back the set is fresh.
	clk.Add(11 * time.Second)
	issuer.mu.Lock()
	issuer.down = false
	issuer.mu.Unlock()
	if _, err := r.PublicKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, r)
	if n := issuer.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after minRefresh passed, want 3", n)
	}
	for range 10 {
		if _, err := r.PublicKey(ctx, key.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := issuer.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches with a fresh set, want 3", n)
	}
}

func TestRemoteKeysFetchOnceForAllWaitersOnADetachedContext(t *testing.T) {
	key := testKey(t)
	gate := make(chan struct{})
	issuer := &fakeIssuer{keys: []PublicKey{key}, gate: gate, started: make(chan struct{}, 100)}
	r := NewRemoteKeys(issuer.fetch, time.Hour, time.Nanosecond)

	// The first caller's request is cancelled while the fetch runs: it stops
	// waiting, but the fetch goes on for everybody else.
	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := r.PublicKey(first, key.ID)
		firstErr <- err
	}()
	<-issuer.started
	cancel()
	select {
	case err := <-firstErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled caller still waits for the issuer")
	}

	const waiters = 20
	var wg sync.WaitGroup
	results := make(chan error, waiters)
	for range waiters {
		wg.Go(func() {
			got, err := r.PublicKey(context.Background(), key.ID)
			if err == nil && !got.Equal(key.Key) {
				err = errors.New("wrong key")
			}
			results <- err
		})
	}
	close(gate)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	}
	if n := issuer.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for %d concurrent look-ups, want 1", n, waiters+1)
	}
	issuer.mu.Lock()
	defer issuer.mu.Unlock()
	if len(issuer.ctxErrs) != 1 || issuer.ctxErrs[0] != nil {
		t.Fatalf("fetch context errors %v, want one fetch whose context the cancelled request did not end", issuer.ctxErrs)
	}
}

func TestRemoteKeysUnknownKidWaitsForTheFetchAndNamesItsError(t *testing.T) {
	issuer := &fakeIssuer{down: true}
	r := NewRemoteKeys(issuer.fetch, time.Hour, time.Hour)
	_, err := r.PublicKey(context.Background(), "k1")
	if err == nil || !errors.Is(err, errUnknownKid) {
		t.Fatalf("first look-up with the issuer down: %v, want unknown kid", err)
	}
	if got := err.Error(); got != `unknown kid "k1": issuer down` {
		t.Fatalf("error %q, want the kid and the fetch's reason", got)
	}
}
