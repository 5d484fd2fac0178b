package proof_test

// The safety-alert path end to end: ePRO's outbox job -> the notification
// service's SendNotification -> its delivery job -> the push vendor (the fake
// vendor, with faults) -> the site investigator's device.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// breakerLog counts the circuit breaker transitions a process logs (the kit
// logs each one: "circuit breaker", from, to) and passes records on.
type breakerLog struct {
	n    *atomic.Int64
	next slog.Handler
}

func newBreakerLog() *breakerLog {
	var next slog.Handler = slog.DiscardHandler
	if os.Getenv("TRIALHUB_PROOF_LOG") != "" {
		next = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})
	}
	return &breakerLog{n: &atomic.Int64{}, next: next}
}

func (b *breakerLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (b *breakerLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "circuit breaker" {
		b.n.Add(1)
	}
	if b.next.Enabled(ctx, r.Level) {
		return b.next.Handle(ctx, r)
	}
	return nil
}

func (b *breakerLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &breakerLog{n: b.n, next: b.next.WithAttrs(as)}
}

func (b *breakerLog) WithGroup(g string) slog.Handler {
	return &breakerLog{n: b.n, next: b.next.WithGroup(g)}
}

// vendorConcurrency is the notification service's bulkhead in the proofs: at
// most this many push calls in flight per process.
const vendorConcurrency = 4

// deliveryWorkers is how many delivery jobs the notification service works at once.
const deliveryWorkers = 8

// alertPath is ePRO and the notification service, each on its own PostgreSQL
// database, with the fake push vendor and the investigator's registered device.
type alertPath struct {
	w        *world
	e        *eproEnv
	notif    *process
	notifDSN string
	vendor   *fakevendor.Vendor
	vendURL  string
	eproBrk  *breakerLog
	notifBrk *breakerLog
}

func startAlertPath(t testing.TB) *alertPath {
	t.Helper()
	a := &alertPath{w: newWorld(t, false), notifDSN: pgtest.New(t), eproBrk: newBreakerLog(), notifBrk: newBreakerLog()}
	a.vendor, a.vendURL = fakevendor.Start(t)
	a.notif = a.startNotification(t, "")
	a.e = a.w.startEpro(t, pgtest.New(t), a.notif.URL, slog.New(a.eproBrk))
	// The site's investigator has the app: the alerts go to this device.
	c := notificationv1connect.NewNotificationServiceClient(clientTo(t, a.notif.URL, a.w.signer,
		auth.Caller{Subject: staffID, Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{siteID}}, 10*time.Second))
	if _, err := c.RegisterDevice(context.Background(), &notificationv1.RegisterDeviceRequest{PushToken: "push-token-investigator-1",
		Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_IOS, AppVersion: "2.4.1", Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	return a
}

// startNotification runs the notification service on its database at addr (a
// free port when empty), with fast retries and a breaker that probes after
// 500 ms, so a proof sees recovery in seconds.
func (a *alertPath) startNotification(t testing.TB, addr string) *process {
	t.Helper()
	return startProcess(t, processConfig{
		services: []platform.Service{notification.Platform(notification.WithPushURL(a.vendURL),
			notification.WithRetryBackoff(50*time.Millisecond, 400*time.Millisecond), notification.WithBreakerWait(300*time.Millisecond),
			notification.WithMaxAttempts(1000), notification.WithPollEvery(0),
			notification.WithVendorConcurrency(vendorConcurrency), notification.WithWorkers(deliveryWorkers))},
		dsn:    a.notifDSN,
		deps:   map[string]string{notification.PatientDependency: a.w.standIns.URL, notification.TrialDependency: a.w.standIns.URL, notification.PushDependency: a.vendURL},
		signer: a.w.signer,
		addr:   addr,
		jobs:   []jobs.Option{jobs.WithRescueStuckAfter(3 * time.Second), jobs.WithJobTimeout(2 * time.Second)},
		log:    slog.New(a.notifBrk),
		tune:   func(d *client.Dependency) { d.Breaker.OpenFor = 500 * time.Millisecond },
	})
}

// load submits count alerting responses per patient, the patients concurrently,
// and returns the latencies; every submission must succeed.
func (a *alertPath) load(t testing.TB, patients []*patient, from, count int, visits *[]string, mu *sync.Mutex) *latencies {
	t.Helper()
	lat := &latencies{}
	ans := answers(t, a.e.phq9, true)
	var wg sync.WaitGroup
	errs := make(chan error, len(patients))
	for i, p := range patients {
		wg.Go(func() {
			for n := from; n < from+count; n++ {
				start := time.Now()
				_, err := a.e.submit(context.Background(), p, p.visits[n], fmt.Sprintf("alert-%02d-%06d-submission", i, n), ans)
				if err != nil {
					errs <- fmt.Errorf("patient %d submission %d: %w", i, n, err)
					return
				}
				lat.add(time.Since(start))
				mu.Lock()
				*visits = append(*visits, p.visits[n])
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return lat
}

// delivered checks each visit's alert in the notification service's database
// (one notification per visit, DELIVERED) and at the vendor (each push key
// delivered once); it returns the figures and whether all arrived.
func (a *alertPath) delivered(t testing.TB, visits []string) (deliveries, duplicates, lost int, done bool) {
	t.Helper()
	d, err := sql.Open("postgres", a.notifDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	per := map[string]int{}
	rows, err := d.Query(`SELECT subject_visit_id, count(*) FROM notifications WHERE status = 'DELIVERED' GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		per[v] = n
	}
	for _, v := range visits {
		switch per[v] {
		case 0:
			lost++
		case 1:
			deliveries++
		default:
			deliveries++
			duplicates++
		}
	}
	keys := map[string]bool{}
	for _, m := range a.vendor.Messages("push") {
		keys[m.Key] = true
	}
	for k := range keys {
		if a.vendor.Deliveries(k) != 1 {
			duplicates++
		}
	}
	return deliveries, duplicates, lost, lost == 0 && len(keys) == len(visits)
}

// goroutines samples runtime.NumGoroutine every 20 ms until end.
type goroutines struct {
	mu      sync.Mutex
	samples []int
	stop    chan struct{}
	done    chan struct{}
}

func sampleGoroutines() *goroutines {
	g := &goroutines{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			g.mu.Lock()
			g.samples = append(g.samples, runtime.NumGoroutine())
			g.mu.Unlock()
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

// end stops sampling and returns the highest count seen and the settled count:
// the median of the last 300 ms, once the phase's calls have come and gone.
func (g *goroutines) end() (peak, settled int) {
	close(g.stop)
	<-g.done
	last := slices.Clone(g.samples[max(0, len(g.samples)-15):])
	slices.Sort(last)
	return slices.Max(g.samples), last[len(last)/2]
}

// TestProof1VendorHangs: the push vendor hangs (accepts the connection, never
// answers) for the whole test while patients submit PHQ-9 responses that each
// raise a safety alert. Every submission succeeds, submission p99 stays within
// 2x of the same load with a healthy vendor measured first in the same run, and
// the goroutines the hang holds are bounded by the notification service's
// bulkhead: the count stays under the healthy phase's peak plus a bound made
// of the bulkhead and the delivery workers, and does not grow when twice as
// many alerts wait. Goroutines are the test binary's, which runs every process
// of the proof (ePRO, the notification service, the stand-ins, the vendor).
func TestProof1VendorHangs(t *testing.T) {
	a := startAlertPath(t)
	perPatient := scaled(lean(10, 4), 100)
	warmUp := lean(3, 2)
	patients := a.e.patients(t, 4, warmUp+3*perPatient, 10*time.Second)
	var mu sync.Mutex
	var visits []string

	a.load(t, patients, 0, warmUp, &visits, &mu) // connections, first queries, first deliveries
	g := sampleGoroutines()
	healthy := a.load(t, patients, warmUp, perPatient, &visits, &mu)
	eventually(t, "the healthy phase's alerts delivered", func() bool { _, _, _, done := a.delivered(t, visits); return done })
	base, baseSettled := g.end()
	d, dup, lost, _ := a.delivered(t, visits)
	figures{phase: "vendor healthy", submissions: healthy.n(), ok: healthy.n(), p50: healthy.q(0.5), p99: healthy.q(0.99),
		deliveries: d, duplicates: dup, losses: lost, brk: int(a.notifBrk.n.Load()),
		extra: fmt.Sprintf("goroutines_max=%d goroutines_settled=%d", base, baseSettled)}.log(t)

	if err := a.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
		t.Fatal(err)
	}
	hung := &latencies{}
	var peaks, settled []int
	for batch := 1; batch <= 2; batch++ {
		g := sampleGoroutines()
		lat := a.load(t, patients, warmUp+batch*perPatient, perPatient, &visits, &mu)
		// Every alert reached the notification service (ePRO's outbox is
		// empty); the delivery jobs meet the hang (timeouts, retries, the breaker).
		eventually(t, "every alert stored by the notification service", func() bool {
			return countRows(t, a.notifDSN, `SELECT count(*) FROM notifications`) == len(visits)
		})
		time.Sleep(scaled(1500*time.Millisecond, 5*time.Second))
		peak, set := g.end()
		peaks, settled = append(peaks, peak), append(settled, set)
		for _, x := range lat.d {
			hung.add(x)
		}
		figures{phase: fmt.Sprintf("vendor hangs, batch %d", batch), submissions: lat.n(), ok: lat.n(), p50: lat.q(0.5), p99: lat.q(0.99),
			brk: int(a.notifBrk.n.Load()), extra: fmt.Sprintf("goroutines_max=%d goroutines_settled=%d %s", peak, set, a.vendorOutcomes(t))}.log(t)
	}
	ratio := float64(hung.q(0.99)) / float64(healthy.q(0.99))
	bound := base + deliveryWorkers + 6*vendorConcurrency + 20
	figures{phase: "vendor hangs, total", submissions: hung.n(), ok: hung.n(), p50: hung.q(0.5), p99: hung.q(0.99), brk: int(a.notifBrk.n.Load()),
		extra: fmt.Sprintf("p99_ratio=%.2f goroutine_bound=%d", ratio, bound)}.log(t)

	if ratio > 2 {
		t.Errorf("submission p99 %v with the vendor hanging is %.2fx the healthy p99 %v, want at most 2x", hung.q(0.99), ratio, healthy.q(0.99))
	}
	for i, peak := range peaks {
		if peak > bound {
			t.Errorf("batch %d: %d goroutines, more than the bound %d (healthy peak %d + workers %d + 6 x bulkhead %d + 20)",
				i+1, peak, bound, base, deliveryWorkers, vendorConcurrency)
		}
	}
	// Twice as many alerts wait after the second batch; what the hang holds is
	// the same bounded set (workers, bulkhead slots and their connections).
	// A goroutine per waiting alert would add a batch's worth.
	batch := perPatient * len(patients)
	if settled[1]-settled[0] >= batch/2 {
		t.Errorf("goroutines settled at %d with %d alerts waiting and at %d with %d: the hang holds more as more alerts queue",
			settled[0], batch, settled[1], 2*batch)
	}

	// The vendor recovers: every alert is delivered, once.
	if err := a.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every alert delivered after the vendor recovered", func() bool { _, _, _, done := a.delivered(t, visits); return done })
	d, dup, lost, _ = a.delivered(t, visits)
	figures{phase: "vendor recovered", submissions: len(visits), deliveries: d, duplicates: dup, losses: lost, brk: int(a.notifBrk.n.Load()),
		extra: a.vendorOutcomes(t)}.log(t)
	if dup > 0 {
		t.Errorf("%d alerts delivered more than once", dup)
	}
}

// vendorOutcomes is the notification service's count of push attempts by
// outcome: sent and timed out (transient), held back by the open breaker or the
// full bulkhead, accepted.
func (a *alertPath) vendorOutcomes(t testing.TB) string {
	t.Helper()
	out := ""
	for _, o := range []notification.Outcome{notification.OutcomeOK, notification.Transient, notification.OutcomeOpen, notification.OutcomeBulked} {
		out += fmt.Sprintf(" vendor_%s=%d", o, scrape(t, a.notif.URL, "notification_vendor_requests_total", map[string]string{"outcome": string(o)}))
	}
	return out[1:]
}

// TestProof5NotificationDown: the notification service is stopped (its
// listener closed) while patients keep submitting alerting responses. ePRO
// accepts every submission (its alert jobs wait in its outbox, retrying, its
// breaker to the notification service opening); when the service returns on
// the same address and database, every alert is delivered: one notification
// per submission in the notification service, each push delivered once at the
// vendor, none lost.
func TestProof5NotificationDown(t *testing.T) {
	a := startAlertPath(t)
	perPatient := scaled(lean(10, 4), 100)
	patients := a.e.patients(t, 4, 2*perPatient, 10*time.Second)
	var mu sync.Mutex
	var visits []string

	up := a.load(t, patients, 0, perPatient, &visits, &mu)
	eventually(t, "the first alerts delivered", func() bool { _, _, _, done := a.delivered(t, visits); return done })
	d, dup, lost, _ := a.delivered(t, visits)
	figures{phase: "notification up", submissions: up.n(), ok: up.n(), p50: up.q(0.5), p99: up.q(0.99),
		deliveries: d, duplicates: dup, losses: lost, brk: int(a.eproBrk.n.Load())}.log(t)

	addr := a.notif.Addr()
	if err := a.notif.Stop(); err != nil {
		t.Fatal(err)
	}
	down := a.load(t, patients, perPatient, perPatient, &visits, &mu)
	time.Sleep(scaled(time.Second, 5*time.Second)) // the alert jobs retry against the closed port
	d, dup, lost, _ = a.delivered(t, visits)
	figures{phase: "notification down", submissions: down.n(), ok: down.n(), p50: down.q(0.5), p99: down.q(0.99),
		deliveries: d, duplicates: dup, brk: int(a.eproBrk.n.Load()), extra: fmt.Sprintf("waiting_in_epro_outbox=%d", lost)}.log(t)
	if d != up.n() {
		t.Fatalf("%d alerts delivered while the notification service was down, want the %d from before", d, up.n())
	}
	if a.eproBrk.n.Load() == 0 {
		t.Error("ePRO's breaker to the notification service never opened while it was down")
	}

	a.notif = a.startNotification(t, addr)
	start := time.Now()
	eventually(t, "every alert delivered after the notification service returned", func() bool { _, _, _, done := a.delivered(t, visits); return done })
	d, dup, lost, _ = a.delivered(t, visits)
	figures{phase: "notification back", submissions: len(visits), deliveries: d, duplicates: dup, losses: lost,
		brk: int(a.eproBrk.n.Load()), extra: fmt.Sprintf("caught_up_in=%v", time.Since(start).Round(10*time.Millisecond))}.log(t)
	if dup > 0 || lost > 0 {
		t.Errorf("%d alerts duplicated, %d lost", dup, lost)
	}
}
