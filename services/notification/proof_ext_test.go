package notification_test

// Fault proofs of the notification service alone, on PostgreSQL with real
// listeners and the fake vendor. Each runs in seconds; TRIALHUB_CHAOS=1 runs a
// longer version and prints the figures (make chaos).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// chaos is whether the long versions run (TRIALHUB_CHAOS=1).
func chaos() bool { return os.Getenv("TRIALHUB_CHAOS") == "1" }

// load is how many notifications a proof sends: a few dozen, or hundreds under chaos.
func load(short, long int) int {
	if chaos() {
		return long
	}
	return short
}

// figures prints a proof's numbers (always logged; printed under chaos).
func figures(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	if chaos() {
		fmt.Println(t.Name() + ": " + line)
	}
}

// breakerLog counts the circuit breaker's transitions in the service's logs.
type breakerLog struct {
	mu    sync.Mutex
	moves []string // "closed->open", ...
}

func (b *breakerLog) Enabled(context.Context, slog.Level) bool { return true }
func (b *breakerLog) WithAttrs([]slog.Attr) slog.Handler       { return b }
func (b *breakerLog) WithGroup(string) slog.Handler            { return b }
func (b *breakerLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "circuit breaker" {
		return nil
	}
	var from, to, dep string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "from":
			from = a.Value.String()
		case "to":
			to = a.Value.String()
		case "dependency":
			dep = a.Value.String()
		}
		return true
	})
	if dep == notification.PushDependency {
		b.mu.Lock()
		b.moves = append(b.moves, from+"->"+to)
		b.mu.Unlock()
	}
	return nil
}

func (b *breakerLog) count(to string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.moves {
		if strings.HasSuffix(m, "->"+to) {
			n++
		}
	}
	return n
}

func (b *breakerLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("%d transitions %v", len(b.moves), b.moves)
}

// sendMany registers one device per patient and sends one reminder each; it
// returns the notification ids.
func (f *fixture) sendMany(t *testing.T, n int, prefix string) []string {
	t.Helper()
	return f.sendManyAfter(t, n, prefix, func() {})
}

// sendManyAfter is sendMany calling registered once the devices are registered,
// before the first send.
func (f *fixture) sendManyAfter(t *testing.T, n int, prefix string, registered func()) []string {
	t.Helper()
	ctx := context.Background()
	subjects := make([]string, n)
	for i := range subjects {
		subjects[i] = uuid.NewString()
		f.device(t, patientCaller(subjects[i]), "tok-"+subjects[i], "en")
	}
	registered()
	ids := make([]string, 0, n)
	for i, subject := range subjects {
		res, err := f.epro.SendNotification(ctx, reminder(fmt.Sprintf("%s:%04d:window-open", prefix, i), subject))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.GetNotification().GetNotificationId())
	}
	return ids
}

// statuses reads every notification's status.
func (f *fixture) statuses(t *testing.T, ids []string) map[string]*notificationv1.Notification {
	t.Helper()
	out := map[string]*notificationv1.Notification{}
	for _, id := range ids {
		res, err := f.admin.GetNotification(context.Background(), &notificationv1.GetNotificationRequest{NotificationId: id})
		if err != nil {
			t.Fatal(err)
		}
		out[id] = res.GetNotification()
	}
	return out
}

// allIn waits until every notification is in one of want.
func (f *fixture) allIn(t *testing.T, ids []string, want ...notificationv1.NotificationStatus) map[string]*notificationv1.Notification {
	t.Helper()
	var got map[string]*notificationv1.Notification
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = f.statuses(t, ids)
		by := map[notificationv1.NotificationStatus]int{}
		for _, n := range got {
			by[n.GetStatus()]++
		}
		done := 0
		for _, w := range want {
			done += by[w]
		}
		if done == len(ids) {
			return got
		}
		if time.Now().Add(100 * time.Millisecond).After(deadline) {
			t.Fatalf("timed out waiting for %d notifications in %v: %v", len(ids), want, by)
		}
	}
	t.Fatalf("timed out waiting for %d notifications in %v", len(ids), want)
	return nil
}

// deliveries counts the vendor's accepted pushes per notification id.
func (f *fixture) deliveries() map[string]int {
	out := map[string]int{}
	for _, m := range f.vendor.Messages(fakevendor.Push) {
		out[m.Params["notification_id"]]++
	}
	return out
}

// checkExactlyOnce asserts each delivered notification reached the vendor once
// per device and nothing was lost; it returns duplicates and losses.
func (f *fixture) checkExactlyOnce(t *testing.T, got map[string]*notificationv1.Notification) (dups, lost int) {
	t.Helper()
	per := f.deliveries()
	for id, n := range got {
		switch {
		case n.GetStatus() == stDelivered && per[id] != 1:
			dups += max(per[id]-1, 0)
			if per[id] == 0 {
				lost++
			}
			t.Errorf("notification %s DELIVERED with %d vendor deliveries, want 1", id, per[id])
		case n.GetStatus() != stDelivered && per[id] > 1:
			dups += per[id] - 1
			t.Errorf("notification %s %s with %d vendor deliveries", id, n.GetStatus(), per[id])
		}
	}
	for _, m := range f.vendor.Messages(fakevendor.Push) {
		if d := f.vendor.Deliveries(m.Key); d != 1 {
			t.Errorf("idempotency key %s delivered %d times", m.Key, d)
		}
	}
	return dups, lost
}

// latency is p50 and p99 of delivered_at - created_at.
func latency(got map[string]*notificationv1.Notification) (p50, p99 time.Duration) {
	var ds []time.Duration
	for _, n := range got {
		if n.GetDeliveredAt() != nil {
			ds = append(ds, n.GetDeliveredAt().AsTime().Sub(n.GetCreatedAt().AsTime()))
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]
}

// Proof 2: the vendor hangs, then recovers: every queued notification is
// delivered exactly once (the vendor's count per idempotency key is 1), none
// lost, and while it hangs the bulkhead bounds the calls in flight.
func TestProof2VendorHangsThenRecovers(t *testing.T) {
	br := &breakerLog{}
	f := setupLogged(t, slog.New(br), notification.WithMaxAttempts(25), notification.WithVendorConcurrency(4))
	// The base is taken once the devices are registered: each registration's
	// test client keeps an idle connection, which is the test's, not the service's.
	var base int
	ids := f.sendManyAfter(t, load(20, 200), "proof2", func() {
		base = runtime.NumGoroutine()
		if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
			t.Fatal(err)
		}
	})
	// Hang until the breaker has opened and every notification waits for a retry.
	peak := base
	eventually(t, "the breaker open and every notification waiting", func() bool {
		peak = max(peak, runtime.NumGoroutine())
		for _, n := range f.statuses(t, ids) {
			if n.GetStatus() != stRetrying && n.GetStatus() != stQueued {
				return false
			}
		}
		return br.count("open") >= 1
	})
	if chaos() {
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	attemptsDuringHang := 0
	for _, n := range f.statuses(t, ids) {
		attemptsDuringHang += int(n.GetAttemptCount())
	}
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	got := f.allIn(t, ids, stDelivered)
	dups, lost := f.checkExactlyOnce(t, got)
	p50, p99 := latency(got)
	figures(t, "notifications %d, delivered %d, duplicates %d, losses %d, attempts while hanging %d, goroutines base %d peak %d, breaker %s, delivery latency p50 %v p99 %v",
		len(ids), len(got), dups, lost, attemptsDuringHang, base, peak, br, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	if br.count("open") < 1 {
		t.Errorf("breaker never opened: %s", br)
	}
}

// Proof 3: the vendor answers 5xx, then 429 with Retry-After, then flaps:
// retries follow backoff and Retry-After, the breaker opens and half-opens,
// every job ends DELIVERED or DEAD, none duplicated.
func TestProof3ServerErrorsThenThrottlingThenFlapping(t *testing.T) {
	br := &breakerLog{}
	f := setupLogged(t, slog.New(br), notification.WithMaxAttempts(25))
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.ServerError, Status: 503}); err != nil {
		t.Fatal(err)
	}
	ids := f.sendMany(t, load(15, 150), "proof3")
	eventually(t, "the breaker to open on 5xx", func() bool { return br.count("open") >= 1 })
	opened5xx := br.count("open")

	// Throttling: a retry waits at least the vendor's Retry-After.
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.TooManyRequests, RetryAfter: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	var throttled *notificationv1.Notification
	eventually(t, "a notification throttled with Retry-After, and the breaker half-open", func() bool {
		for _, n := range f.statuses(t, ids) {
			if n.GetStatus() == stRetrying && strings.HasPrefix(n.GetLastError(), "push vendor: HTTP 429") && strings.Contains(n.GetLastError(), "retry after") {
				throttled = n
			}
		}
		return throttled != nil && br.count("half-open") >= 1
	})
	wait := throttled.GetNextAttemptAt().AsTime().Sub(throttled.GetUpdatedAt().AsTime())
	if wait < time.Second {
		t.Errorf("throttled retry due %v after the 429, want at least the Retry-After (1 s or more): %v", wait, throttled)
	}
	// Flapping, then healthy, until every job ends.
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Flapping, FlapEvery: 2}); err != nil {
		t.Fatal(err)
	}
	if chaos() {
		time.Sleep(20 * time.Second)
	} else {
		eventually(t, "some deliveries while flapping", func() bool { return len(f.deliveries()) > 0 })
	}
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	got := f.allIn(t, ids, stDelivered, stDead)
	dups, lost := f.checkExactlyOnce(t, got)
	var delivered, dead, attempts int
	for _, n := range got {
		attempts += int(n.GetAttemptCount())
		if n.GetStatus() == stDelivered {
			delivered++
		} else {
			dead++
		}
	}
	p50, p99 := latency(got)
	figures(t, "notifications %d, delivered %d, dead %d, duplicates %d, losses %d, attempts %d, opened on 5xx %d, throttled wait %v, breaker %s, delivery latency p50 %v p99 %v",
		len(ids), delivered, dead, dups, lost, attempts, opened5xx, wait.Round(time.Millisecond), br, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	if br.count("open") < 1 || br.count("half-open") < 1 {
		t.Errorf("breaker %s: want it opened and half-opened", br)
	}
}

// Proof 4: two notification processes on one database deliver each job once.
func TestProof4TwoProcessesDeliverOnce(t *testing.T) {
	f := setup(t)
	f.start(t) // a second process on the same database
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Slow, Delay: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ids := f.sendMany(t, load(30, 300), "proof4")
	got := f.allIn(t, ids, stDelivered)
	dups, lost := f.checkExactlyOnce(t, got)
	var workers int
	if err := f.env.DB(t).SQL().QueryRow(`SELECT COUNT(DISTINCT a) FROM river_job, unnest(attempted_by) a WHERE kind = 'notification.deliver'`).Scan(&workers); err != nil {
		t.Fatal(err)
	}
	p50, p99 := latency(got)
	figures(t, "notifications %d, delivered %d, duplicates %d, losses %d, processes that worked jobs %d, delivery latency p50 %v p99 %v",
		len(ids), len(got), dups, lost, workers, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
}

// helperEnv names the database the helper process serves on.
const helperEnv = "TRIALHUB_NOTIFICATION_HELPER_DSN"

// TestHelperProcess is not a test: proof 6 runs the test binary again with it
// to serve the notification service in a child process it can SIGKILL.
func TestHelperProcess(t *testing.T) {
	dsn := os.Getenv(helperEnv)
	if dsn == "" {
		t.Skip("only as proof 6's child process")
	}
	platformtest.Start(t, notification.Platform(append(testOptions(os.Getenv("TRIALHUB_PUSH_VENDOR_URL")), notification.WithMaxAttempts(25))...),
		platformtest.WithDSN(dsn), platformtest.WithJobOptions(jobs.WithRescueStuckAfter(3*time.Second), jobs.WithJobTimeout(2*time.Second)))
	fmt.Println("helper serving")
	select {} // until killed
}

// serve runs the service on the fixture's database until stop is called.
func (f *fixture) serve(t *testing.T, opts ...notification.Option) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	p := platform.Process{
		Name: "notification", Services: []platform.Service{notification.Platform(append(testOptions(f.vendURL), opts...)...)},
		DSN: func(string) string { return f.dsn }, Verifier: auth.NewVerifier(f.signer.Keys(), platformtest.Issuer),
		Tokens: func(s string) auth.TokenSource {
			return auth.NewSignerTokens(f.signer, auth.Caller{Subject: s, Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
		},
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			if dep.Name != notification.PushDependency {
				dep.BaseURL = f.standURL
			}
			return dep, nil
		},
		ServerOptions: []platform.Option{platform.WithDrainDelay(0)},
		JobOptions:    []jobs.Option{jobs.WithHardStopWait(time.Second)},
		Log:           slog.New(slog.DiscardHandler),
		Ready:         func(string) { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// Proof 6: a process killed with SIGKILL during delivery: after a fresh process
// starts, every job completes and none is delivered twice beyond what the
// vendor deduplicates by key.
func TestProof6KilledDuringDelivery(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the child")
	}
	f := setupBare(t, slog.New(slog.DiscardHandler))
	d := f.db(t)
	// The notifications are accepted by a process that then stops.
	url, stop := f.serve(t, notification.WithMaxAttempts(25))
	c := notificationv1Client(t, f, url)
	if err := f.vendor.SetFault(fakevendor.Fault{Mode: fakevendor.Hang}); err != nil {
		t.Fatal(err)
	}
	n := load(20, 200)
	ids := make([]string, 0, n)
	for i := range n {
		subject := uuid.NewString()
		if _, err := deviceOn(t, f, url, subject); err != nil {
			t.Fatal(err)
		}
		res, err := c.SendNotification(context.Background(), reminder(fmt.Sprintf("proof6:%04d:window-open", i), subject))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.GetNotification().GetNotificationId())
	}
	stop()
	// A child process takes the jobs while the vendor hangs, and is killed.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+f.dsn, "TRIALHUB_PUSH_VENDOR_URL="+f.vendURL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var running int
	eventually(t, "the child delivering to the hanging vendor", func() bool { running = runningJobs(t, d); return running > 0 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The vendor recovers; a fresh process rescues and finishes the jobs.
	if err := f.vendor.SetFault(fakevendor.Fault{}); err != nil {
		t.Fatal(err)
	}
	f.run(t, notification.WithMaxAttempts(25))
	got := f.allIn(t, ids, stDelivered)
	dups, lost := f.checkExactlyOnce(t, got)
	var rescued int
	if err := d.SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'notification.deliver' AND errors::text LIKE '%rescued%'`).Scan(&rescued); err != nil {
		t.Fatal(err)
	}
	figures(t, "notifications %d, delivered %d, duplicates %d, losses %d, jobs running at the kill %d, rescued %d",
		len(ids), len(got), dups, lost, running, rescued)
	if running > 0 && rescued == 0 {
		t.Errorf("%d jobs were running in the killed process, none rescued", running)
	}
}

// runningJobs counts delivery jobs River has running in any process.
func runningJobs(t *testing.T, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'notification.deliver' AND state = 'running'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Proof 9: a safety alert nobody acknowledges escalates on time; one whose
// delivery fails is visible to admins as FAILED or DEAD and re-queued by them,
// then delivered.
func TestProof9AlertsEscalateAndFailuresAreRequeued(t *testing.T) {
	f := setup(t, notification.WithEscalateAfter(2*time.Second), notification.WithMaxAttempts(2))
	ctx := context.Background()
	admin := uuid.NewString()
	f.device(t, auth.Caller{Subject: admin, Role: authzv1.Role_ROLE_ADMIN}, "tok-admin-9", "en")
	// Nobody on the site has a device, and the vendor fails: the first step fails.
	inv := uuid.NewString()
	f.staff.set(f.site, inv)
	res, err := f.epro.SendNotification(ctx, f.alert("epro:alert:proof9"))
	if err != nil {
		t.Fatal(err)
	}
	first := f.waitStatus(t, res.GetNotification().GetNotificationId(), stFailed)
	list, err := f.admin.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{
		Statuses: []notificationv1.NotificationStatus{stFailed, stDead}, Kinds: []notificationv1.NotificationKind{notificationv1.NotificationKind_NOTIFICATION_KIND_ALERT}})
	if err != nil || len(list.GetNotifications()) != 1 || list.GetNotifications()[0].GetNotificationId() != first.GetNotificationId() {
		t.Fatalf("admin's failed alerts = %v, %v", list, err)
	}
	// The investigator registers a device; the admin re-queues; it is delivered.
	f.device(t, staffCaller(inv, f.site), "tok-inv-9", "en")
	if _, err := f.admin.RequeueNotification(ctx, &notificationv1.RequeueNotificationRequest{NotificationId: first.GetNotificationId(), Reason: "investigator registered a device"}); err != nil {
		t.Fatal(err)
	}
	f.waitStatus(t, first.GetNotificationId(), stDelivered)
	// Still unacknowledged: it escalates on time to the admins.
	var a *notificationv1.SafetyAlert
	eventually(t, "escalation to admins", func() bool {
		l, err := f.admin.ListSafetyAlerts(ctx, &notificationv1.ListSafetyAlertsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		a = l.GetAlerts()[0]
		return a.GetEscalationLevel() == notificationv1.EscalationLevel_ESCALATION_LEVEL_ADMINS
	})
	var late []time.Duration
	for i, st := range a.GetSteps()[1:] {
		due := a.GetSteps()[i].GetAt().AsTime().Add(2 * time.Second) // escalate-after past the step before
		if st.GetAt().AsTime().Before(due) {
			t.Errorf("step %v taken before it was due (%v)", st, due)
		}
		late = append(late, st.GetAt().AsTime().Sub(due))
	}
	last := f.waitStatus(t, a.GetSteps()[2].GetNotificationId(), stDelivered)
	figures(t, "steps %d, escalation lateness %v, admin step devices %d", len(a.GetSteps()), late, last.GetDeviceCount())
}

// notificationv1Client is a client as the epro service to the process at url.
func notificationv1Client(t *testing.T, f *fixture, url string) notificationv1connect.NotificationServiceClient {
	return notificationv1connect.NewNotificationServiceClient(clientAt(t, f, url, platformtest.Service("epro")))
}

// deviceOn registers a patient device through the process at url.
func deviceOn(t *testing.T, f *fixture, url, subject string) (string, error) {
	c := notificationv1connect.NewNotificationServiceClient(clientAt(t, f, url, patientCaller(subject)))
	res, err := c.RegisterDevice(context.Background(), &notificationv1.RegisterDeviceRequest{
		PushToken: "tok-" + subject, Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_ANDROID, AppVersion: "2.4.1", Locale: "en"})
	return res.GetDevice().GetDeviceId(), err
}

func clientAt(t *testing.T, f *fixture, url string, caller auth.Caller) *connect.Client {
	token, _, err := f.signer.Sign(caller, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dep := client.Service("test", url)
	dep.MaxAttempts, dep.Timeout, dep.Breaker.Disabled = 1, 30*time.Second, true
	return client.New(dep, client.WithTokens(auth.StaticToken(token)))
}
