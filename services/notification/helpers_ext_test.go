package notification_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// staffStandIn is the patient service's ListSiteStaff: who is on which site now.
type staffStandIn struct {
	patientv1connect.UnimplementedAuthServiceHandler
	mu      sync.Mutex
	bySite  map[string][]string // site -> staff ids
	down    bool
	callers []string
}

func (p *staffStandIn) ListSiteStaff(ctx context.Context, req *patientv1.ListSiteStaffRequest) (*patientv1.ListSiteStaffResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, _ := auth.CallerFrom(ctx)
	p.callers = append(p.callers, c.Subject)
	if p.down {
		return nil, connect.NewError(connect.CodeUnavailable, "down")
	}
	res := &patientv1.ListSiteStaffResponse{}
	for _, id := range p.bySite[req.GetSiteId()] {
		res.Staff = append(res.Staff, &patientv1.SiteStaffMember{StaffId: id, Role: authzv1.Role_ROLE_INVESTIGATOR})
	}
	return res, nil
}

// subjectStandIn is the patient service's GetSubjectStatus: every subject is an
// active patient unless closed.
type subjectStandIn struct {
	patientv1connect.UnimplementedPatientServiceHandler
	mu     sync.Mutex
	closed map[string]bool
}

func (p *subjectStandIn) GetSubjectStatus(_ context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE
	if p.closed[req.GetSubjectUuid()] {
		st = patientv1.AccountStatus_ACCOUNT_STATUS_CLOSED
	}
	return &patientv1.GetSubjectStatusResponse{SubjectUuid: req.GetSubjectUuid(), Exists: true, Status: st}, nil
}

func (p *subjectStandIn) close(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed[subject] = true
}

func (p *staffStandIn) set(site string, staff ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bySite[site] = staff
}

// trialStandIn is the trial service: one trial, its sites and its worklist.
type trialStandIn struct {
	trialv1connect.UnimplementedTrialServiceHandler
	mu      sync.Mutex
	trialID string
	sites   []*trialv1.Site
	visits  map[string]*trialv1.SubjectVisit
}

func (tr *trialStandIn) ListTrials(context.Context, *trialv1.ListTrialsRequest) (*trialv1.ListTrialsResponse, error) {
	return &trialv1.ListTrialsResponse{Trials: []*trialv1.Trial{{TrialId: tr.trialID}}}, nil
}

func (tr *trialStandIn) GetTrial(_ context.Context, req *trialv1.GetTrialRequest) (*trialv1.GetTrialResponse, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if req.GetTrialId() != tr.trialID {
		return nil, connect.NewError(connect.CodeNotFound, "trial not found")
	}
	return &trialv1.GetTrialResponse{Trial: &trialv1.Trial{TrialId: tr.trialID}, Sites: tr.sites}, nil
}

func (tr *trialStandIn) ListWorklist(_ context.Context, req *trialv1.ListWorklistRequest) (*trialv1.ListWorklistResponse, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res := &trialv1.ListWorklistResponse{}
	for _, v := range tr.visits {
		if req.GetUpdatedAfter() == nil || v.GetUpdatedAt().AsTime().After(req.GetUpdatedAfter().AsTime()) {
			res.Visits = append(res.Visits, v)
		}
	}
	slices.SortFunc(res.Visits, func(a, b *trialv1.SubjectVisit) int {
		return a.GetUpdatedAt().AsTime().Compare(b.GetUpdatedAt().AsTime())
	})
	return res, nil
}

func (tr *trialStandIn) putVisit(v *trialv1.SubjectVisit) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	v.TrialId = tr.trialID
	v.UpdatedAt = timestamppb.New(time.Now())
	for _, site := range tr.sites { // as the trial service's worklist does
		if site.GetSiteId() == v.GetSiteId() {
			v.SiteTimeZone = site.GetTimeZone()
		}
	}
	tr.visits[v.GetSubjectVisitId()] = v
}

type fixture struct {
	env      *platformtest.Env
	dsn      string
	signer   *auth.Signer
	admin    notificationv1connect.NotificationServiceClient
	epro     notificationv1connect.NotificationServiceClient
	vendor   *fakevendor.Vendor
	vendURL  string
	standURL string
	staff    *staffStandIn
	subjects *subjectStandIn
	trial    *trialStandIn
	site     string
	other    string
	log      *slog.Logger
}

// setup runs the notification service on PostgreSQL against stand-ins on a
// real listener and the fake vendor. Retries are fast so tests take seconds.
func setup(t testing.TB, opts ...notification.Option) *fixture {
	t.Helper()
	return setupLogged(t, slog.New(slog.DiscardHandler), opts...)
}

// setupLogged is setup with the service's logs going to log.
func setupLogged(t testing.TB, log *slog.Logger, opts ...notification.Option) *fixture {
	t.Helper()
	f := setupBare(t, log)
	f.run(t, opts...)
	return f
}

// setupBare is the fixture without a process of the service yet.
func setupBare(t testing.TB, log *slog.Logger) *fixture {
	t.Helper()
	f := &fixture{site: uuid.NewString(), other: uuid.NewString(), dsn: pgtest.New(t), signer: platformtest.NewSigner(t), log: log}
	f.staff = &staffStandIn{bySite: map[string][]string{}}
	f.subjects = &subjectStandIn{closed: map[string]bool{}}
	f.trial = &trialStandIn{trialID: uuid.NewString(), visits: map[string]*trialv1.SubjectVisit{},
		sites: []*trialv1.Site{{SiteId: f.site, TimeZone: "America/New_York"}, {SiteId: f.other, TimeZone: "Europe/Berlin"}}}
	f.trial.sites[0].TrialId, f.trial.sites[1].TrialId = f.trial.trialID, f.trial.trialID
	standIns := platformtest.Start(t, platform.Service{Name: "standins", Mount: func(_ context.Context, m *platform.Mount) error {
		patientv1connect.RegisterAuthServiceHandler(m.RPC(), f.staff)
		patientv1connect.RegisterPatientServiceHandler(m.RPC(), f.subjects)
		trialv1connect.RegisterTrialServiceHandler(m.RPC(), f.trial)
		return nil
	}}, platformtest.WithSigner(f.signer), platformtest.WithSQLite())
	f.standURL = standIns.URL
	f.vendor, f.vendURL = fakevendor.Start(t)
	return f
}

// run starts the fixture's main process of the service on its database.
func (f *fixture) run(t testing.TB, opts ...notification.Option) {
	t.Helper()
	f.env = f.start(t, opts...)
	f.admin = notificationv1connect.NewNotificationServiceClient(f.env.Client(t, platformtest.Admin()))
	f.epro = notificationv1connect.NewNotificationServiceClient(f.env.Client(t, platformtest.Service("epro")))
}

// testOptions are the service settings every test runs with: fast retries and
// polls so background work finishes in seconds.
func testOptions(vendorURL string) []notification.Option {
	return []notification.Option{
		notification.WithPushURL(vendorURL), notification.WithRetryBackoff(50*time.Millisecond, 400*time.Millisecond),
		notification.WithBreakerWait(300 * time.Millisecond), notification.WithMaxAttempts(6), notification.WithPollEvery(0),
	}
}

// start runs one more process of the service on the fixture's database.
func (f *fixture) start(t testing.TB, opts ...notification.Option) *platformtest.Env {
	t.Helper()
	return platformtest.Start(t, notification.Platform(append(testOptions(f.vendURL), opts...)...),
		platformtest.WithDSN(f.dsn), platformtest.WithSigner(f.signer), platformtest.WithLogger(f.log),
		platformtest.WithDependency(notification.PatientDependency, f.standURL),
		platformtest.WithDependency(notification.TrialDependency, f.standURL),
		platformtest.WithJobOptions(jobs.WithRescueStuckAfter(3*time.Second), jobs.WithJobTimeout(2*time.Second)))
}

// device registers a device for caller and returns its id.
func (f *fixture) device(t testing.TB, caller auth.Caller, token, locale string) string {
	t.Helper()
	c := notificationv1connect.NewNotificationServiceClient(f.env.Client(t, caller))
	res, err := c.RegisterDevice(context.Background(), &notificationv1.RegisterDeviceRequest{
		PushToken: token, Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_IOS, AppVersion: "2.4.1", Locale: locale})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetDevice().GetDeviceId()
}

func staffCaller(id string, sites ...string) auth.Caller {
	return auth.Caller{Subject: id, Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: sites}
}

func patientCaller(id string) auth.Caller {
	return auth.Caller{Subject: id, Role: authzv1.Role_ROLE_PATIENT}
}

// reminder is a SendNotification of a patient reminder.
func reminder(key, subject string) *notificationv1.SendNotificationRequest {
	return &notificationv1.SendNotificationRequest{
		IdempotencyKey: key, Kind: notificationv1.NotificationKind_NOTIFICATION_KIND_REMINDER,
		Recipient:    &notificationv1.Recipient{Target: &notificationv1.Recipient_SubjectUuid{SubjectUuid: subject}},
		TemplateCode: "visit_window_opened", Priority: notificationv1.NotificationPriority_NOTIFICATION_PRIORITY_NORMAL,
	}
}

// alert is a SendNotification of a safety alert to a site's staff, as the ePRO service sends it.
func (f *fixture) alert(key string) *notificationv1.SendNotificationRequest {
	return &notificationv1.SendNotificationRequest{
		IdempotencyKey: key, Kind: notificationv1.NotificationKind_NOTIFICATION_KIND_ALERT,
		Recipient: &notificationv1.Recipient{Target: &notificationv1.Recipient_Staff{Staff: &notificationv1.StaffRecipient{
			Target: &notificationv1.StaffRecipient_SiteId{SiteId: f.site}}}},
		TemplateCode: "epro_alert_urgent", Priority: notificationv1.NotificationPriority_NOTIFICATION_PRIORITY_HIGH,
		TrialId: f.trial.trialID, AboutSubjectUuid: uuid.NewString(), SourceReference: "epro:response/" + uuid.NewString(),
	}
}

// eventually polls cond with a generous bound: background work is awaited, not timed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitStatus waits until the notification is in one of the statuses and returns it.
func (f *fixture) waitStatus(t testing.TB, id string, want ...notificationv1.NotificationStatus) *notificationv1.Notification {
	t.Helper()
	var n *notificationv1.Notification
	eventually(t, "notification "+id+" "+want[0].String(), func() bool {
		res, err := f.admin.GetNotification(context.Background(), &notificationv1.GetNotificationRequest{NotificationId: id})
		if err != nil {
			t.Fatal(err)
		}
		n = res.GetNotification()
		return slices.Contains(want, n.GetStatus())
	})
	return n
}

// client is the service's client for caller.
func (f *fixture) client(t testing.TB, caller auth.Caller) notificationv1connect.NotificationServiceClient {
	return notificationv1connect.NewNotificationServiceClient(f.env.Client(t, caller))
}

// db opens the fixture's database (closed at the end of the test).
func (f *fixture) db(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
