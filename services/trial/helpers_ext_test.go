package trial_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/trial"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// patients is a real Connect handler of trialhub.patient.v1.PatientService,
// served by the kit's server on a real listener, answering GetSubjectStatus
// from a map the test fills, so a test sets any account status and counts the
// calls; the real patient service runs with this one in services/stack's tests.
// Every other method is unimplemented.
type patients struct {
	patientv1connect.UnimplementedPatientServiceHandler
	mu       sync.Mutex
	statuses map[string]patientv1.AccountStatus
	calls    int
}

func (p *patients) set(subject string, status patientv1.AccountStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.statuses[subject] = status
}

func (p *patients) GetSubjectStatus(_ context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	st, ok := p.statuses[req.GetSubjectUuid()]
	res := &patientv1.GetSubjectStatusResponse{SubjectUuid: req.GetSubjectUuid(), Exists: ok, Status: st}
	if ok {
		res.CreatedAt = timestamppb.Now()
	}
	return res, nil
}

// startPatients serves p on a loopback port, verifying tokens of signer.
func startPatients(t testing.TB, signer *auth.Signer, p *patients) string {
	t.Helper()
	srv := platform.NewServer("patient", platform.WithDrainDelay(0), platform.WithLogger(quiet), platform.WithVerifier(auth.NewVerifier(signer.Keys(), platformtest.Issuer)))
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			t.Errorf("patient stand-in: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is the service's injectable clock: the real time until set.
type clock struct {
	mu sync.Mutex
	at time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now()
	}
	return c.at
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = t
}

type harness struct {
	env      *platformtest.Env
	patients *patients
	clock    *clock
}

func start(t testing.TB, opts ...platformtest.Option) *harness {
	t.Helper()
	signer := platformtest.NewSigner(t)
	p := &patients{statuses: map[string]patientv1.AccountStatus{}}
	c := &clock{}
	opts = append([]platformtest.Option{platformtest.WithSigner(signer),
		platformtest.WithDependency("patient", startPatients(t, signer, p))}, opts...)
	return &harness{env: platformtest.Start(t, trial.Platform(trial.WithClock(c.Now)), opts...), patients: p, clock: c}
}

func (h *harness) api(t testing.TB, who auth.Caller) trialv1connect.TrialServiceClient {
	return trialv1connect.NewTrialServiceClient(h.env.Client(t, who))
}

func admin() auth.Caller { return platformtest.Admin() }

func investigator(sites, trials []string) auth.Caller {
	return auth.Caller{Subject: "inv-" + uuid.NewString()[:8], Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: sites, Trials: trials}
}

func analyst(trials ...string) auth.Caller {
	return auth.Caller{Subject: "analyst-1", Role: authzv1.Role_ROLE_ANALYST, Trials: trials}
}

func patient(subject string) auth.Caller {
	return auth.Caller{Subject: subject, Role: authzv1.Role_ROLE_PATIENT}
}

func key() string { return "k-" + uuid.NewString() }

func wantCode(t testing.TB, what string, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func must[T any](t testing.TB, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// recruitingTrial creates a trial with a Shanghai and a New York site and
// schedule visits, and opens recruitment.
func recruitingTrial(t testing.TB, ctx context.Context, api trialv1connect.TrialServiceClient, visits []*trialv1.Visit) (trialID, shanghai, newYork string) {
	t.Helper()
	tr := must[*trialv1.CreateTrialResponse](t, "CreateTrial")(api.CreateTrial(ctx, &trialv1.CreateTrialRequest{
		ProtocolCode: "TH-" + uuid.NewString()[:8], Title: "A test trial", Phase: trialv1.TrialPhase_TRIAL_PHASE_3,
		Sponsor: "Test Sponsor", IdempotencyKey: key()})).GetTrial()
	if tr.GetStatus() != trialv1.TrialStatus_TRIAL_STATUS_PLANNED {
		t.Fatalf("new trial is %s, want PLANNED", tr.GetStatus())
	}
	add := func(code, zone string) string {
		return must[*trialv1.AddSiteResponse](t, "AddSite")(api.AddSite(ctx, &trialv1.AddSiteRequest{
			TrialId: tr.GetTrialId(), SiteCode: code, Name: "Site " + code, CountryCode: "CN", TimeZone: zone,
			IdempotencyKey: key()})).GetSite().GetSiteId()
	}
	shanghai, newYork = add("CN-001", "Asia/Shanghai"), add("US-001", "America/New_York")
	must[*trialv1.DefineVisitScheduleResponse](t, "DefineVisitSchedule")(api.DefineVisitSchedule(ctx, &trialv1.DefineVisitScheduleRequest{
		TrialId: tr.GetTrialId(), Visits: visits, ExistingPlanPolicy: trialv1.ExistingPlanPolicy_EXISTING_PLAN_POLICY_KEEP_VERSION,
		Reason: "Initial schedule", IdempotencyKey: key()}))
	must[*trialv1.UpdateTrialStatusResponse](t, "UpdateTrialStatus")(api.UpdateTrialStatus(ctx, &trialv1.UpdateTrialStatusRequest{
		TrialId: tr.GetTrialId(), Status: trialv1.TrialStatus_TRIAL_STATUS_RECRUITING, Reason: "Ethics approval", IdempotencyKey: key()}))
	return tr.GetTrialId(), shanghai, newYork
}

func byURL(urls ...string) []*trialv1.QuestionnaireRef {
	var out []*trialv1.QuestionnaireRef
	for _, u := range urls {
		out = append(out, &trialv1.QuestionnaireRef{Ref: &trialv1.QuestionnaireRef_QuestionnaireUrl{QuestionnaireUrl: u}, Version: "1.0.0"})
	}
	return out
}

// schedule is a typical one: screening on day -7, baseline on day 1, week 1.
func schedule() []*trialv1.Visit {
	phq9 := byURL("http://loinc.org/q/44249-1")
	return []*trialv1.Visit{
		{Code: "SCREENING", Name: "Screening", StudyDay: -7, WindowBeforeDays: 3, WindowAfterDays: 3, Questionnaires: phq9},
		{Code: "BASELINE", Name: "Baseline", StudyDay: 1, WindowBeforeDays: 0, WindowAfterDays: 3, Questionnaires: phq9},
		{Code: "W01", Name: "Week 1", StudyDay: 8, WindowBeforeDays: 2, WindowAfterDays: 2, Questionnaires: phq9},
	}
}

func visitByCode(t testing.TB, visits []*trialv1.SubjectVisit, code string) *trialv1.SubjectVisit {
	t.Helper()
	for _, v := range visits {
		if v.GetVisitCode() == code {
			return v
		}
	}
	t.Fatalf("no visit %s in %v", code, visits)
	return nil
}

type trialv1connectClient = trialv1connect.TrialServiceClient

func trialv1connectNew(env *platformtest.Env, t testing.TB) trialv1connect.TrialServiceClient {
	return trialv1connect.NewTrialServiceClient(env.Client(t, admin()))
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
