package proof_test

// The harness the proofs share: processes run by the kit on real listeners, the
// trial and notification stand-ins ePRO delivers to, patients with planned
// visits, PHQ-9 answers, and the figures a proof prints.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// chaos reports whether the long versions run (TRIALHUB_CHAOS=1, `make chaos`).
func chaos() bool { return os.Getenv("TRIALHUB_CHAOS") == "1" }

// raceDetector is set when the race detector is on (`make test` runs with
// -race): code runs several times slower, so the short versions do less work.
var raceDetector bool

// lean is n, or race under the race detector (short versions only).
func lean(n, race int) int {
	if raceDetector && !chaos() {
		return race
	}
	return n
}

// scaled is short in `make test` and long under `make chaos`.
func scaled[T any](short, long T) T {
	if chaos() {
		return long
	}
	return short
}

const siteID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"

// process is one kit process (platform.Process) on a real listener.
type process struct {
	URL    string
	cancel context.CancelFunc
	done   chan error
}

// processConfig is what startProcess runs.
type processConfig struct {
	services []platform.Service
	dsn      string            // every service's database
	deps     map[string]string // dependency name -> URL
	signer   *auth.Signer
	addr     string // listen address; default a free loopback port
	seed     bool
	server   []platform.Option
	jobs     []jobs.Option
	log      *slog.Logger
	tune     func(*client.Dependency) // test settings of every dependency
}

// startProcess runs a process until the test ends (or Stop) and returns once it
// answers (and its seeds ran).
func startProcess(t testing.TB, cfg processConfig) *process {
	t.Helper()
	addr := cfg.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// A port just closed by a stopped process may linger a moment.
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		if os.Getenv("TRIALHUB_PROOF_LOG") != "" { // a proof's processes log to stderr
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}
	signer := cfg.signer
	var seed *platform.SeedConfig
	if cfg.seed {
		seed = &platform.SeedConfig{Mint: func(c auth.Caller) (string, error) {
			token, _, err := signer.Sign(c, time.Hour)
			return token, err
		}}
	}
	ready := make(chan struct{})
	p := platform.Process{
		Name:     cfg.services[0].Name,
		Services: cfg.services,
		DSN:      func(string) string { return cfg.dsn },
		Verifier: auth.NewVerifier(signer.Keys(), platformtest.Issuer),
		Tokens: func(service string) auth.TokenSource {
			return auth.NewSignerTokens(signer, auth.Caller{Subject: service, Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
		},
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			if url, ok := cfg.deps[dep.Name]; ok {
				dep.BaseURL = url
			}
			if cfg.tune != nil {
				cfg.tune(&dep)
			}
			return dep, nil
		},
		ServerOptions: append([]platform.Option{platform.WithDrainDelay(0)}, cfg.server...),
		JobOptions:    cfg.jobs,
		Log:           log,
		Seed:          seed,
		Ready:         func(string) { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := &process{URL: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { pr.done <- p.Serve(ctx, ln) }()
	select {
	case <-ready:
	case err := <-pr.done:
		cancel()
		t.Fatalf("process %s did not start: %v", p.Name, err)
	}
	t.Cleanup(func() {
		if err := pr.Stop(); err != nil {
			t.Errorf("process %s stopped with: %v", p.Name, err)
		}
	})
	return pr
}

// Stop stops the process and closes its listener; a second call returns nil.
func (p *process) Stop() error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	p.cancel = nil
	return <-p.done
}

// Addr is the process's host:port.
func (p *process) Addr() string { return strings.TrimPrefix(p.URL, "http://") }

// ledger counts what a receiver got: calls per idempotency key, and the keys
// per thing a call was about (a subject visit), so a proof tells a retried
// delivery (same key, deduplicated by the receiver) from a duplicate (two keys
// for one visit) and a loss (no key at all).
type ledger struct {
	mu    sync.Mutex
	calls map[string]int
	keys  map[string]map[string]bool
}

func newLedger() *ledger {
	return &ledger{calls: map[string]int{}, keys: map[string]map[string]bool{}}
}

func (l *ledger) record(key, about string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[key]++
	if l.keys[about] == nil {
		l.keys[about] = map[string]bool{}
	}
	l.keys[about][key] = true
}

// tally compares the ledger with what should have arrived: delivered is how
// many of want arrived, duplicates how many arrived under more than one key,
// lost how many never arrived; repeats counts calls beyond the first per key.
func (l *ledger) tally(want []string) (delivered, duplicates, lost, repeats int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, about := range want {
		switch n := len(l.keys[about]); {
		case n == 0:
			lost++
		case n > 1:
			duplicates++
			delivered++
		default:
			delivered++
		}
	}
	for _, n := range l.calls {
		repeats += n - 1
	}
	return delivered, duplicates, lost, repeats
}

// trialStandIn is a TrialService on the kit standing in for services/trial: a
// worklist of planned visits for one trial, and completions recorded in a
// ledger. ePRO only reads the worklist and records completions, so this is the
// whole of what it needs.
type trialStandIn struct {
	trialv1connect.UnimplementedTrialServiceHandler
	trialID     string
	mu          sync.Mutex
	visits      []*trialv1.SubjectVisit
	copied      map[string]bool // visits ePRO is known to hold: no longer listed
	completions *ledger
}

func (s *trialStandIn) ListTrials(context.Context, *trialv1.ListTrialsRequest) (*trialv1.ListTrialsResponse, error) {
	return &trialv1.ListTrialsResponse{Trials: []*trialv1.Trial{{TrialId: s.trialID}}}, nil
}

func (s *trialStandIn) ListWorklist(_ context.Context, req *trialv1.ListWorklistRequest) (*trialv1.ListWorklistResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &trialv1.ListWorklistResponse{}
	for _, v := range s.visits {
		if s.copied[v.GetSubjectVisitId()] {
			continue
		}
		if req.GetUpdatedAfter() == nil || v.GetUpdatedAt().AsTime().After(req.GetUpdatedAfter().AsTime()) {
			res.Visits = append(res.Visits, v)
		}
	}
	return res, nil
}

func (s *trialStandIn) RecordVisitCompletion(_ context.Context, req *trialv1.RecordVisitCompletionRequest) (*trialv1.RecordVisitCompletionResponse, error) {
	s.completions.record(req.GetIdempotencyKey(), req.GetSubjectVisitId())
	return &trialv1.RecordVisitCompletionResponse{}, nil
}

// settle stops listing visits ePRO holds. A real worklist moves on as visits
// change; ePRO re-reads the last 10 s of a worklist on every poll, and the
// proofs poll every 300 ms, so without this each poll would copy every visit
// again for as long as the test runs.
func (s *trialStandIn) settle(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.copied[id] = true
	}
}

// plan adds n open visits of subject, each asking for questionnaireID once.
func (s *trialStandIn) plan(subject, questionnaireID string, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		s.visits = append(s.visits, &trialv1.SubjectVisit{
			SubjectVisitId: ids[i], EnrollmentId: uuid.NewString(), TrialId: s.trialID, SubjectUuid: subject,
			VisitCode: fmt.Sprintf("V%03d", i+1), VisitName: fmt.Sprintf("Visit %d", i+1),
			WindowOpensAt: timestamppb.New(now.Add(-time.Hour)), WindowClosesAt: timestamppb.New(now.Add(24 * time.Hour)),
			Status:         trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING,
			Questionnaires: []*trialv1.QuestionnaireRef{{Ref: &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: questionnaireID}}},
			SiteId:         siteID, UpdatedAt: timestamppb.New(now),
		})
	}
	return ids
}

// alertStandIn is a NotificationService that records the alerts it is asked to
// send, for the proofs that are about ePRO and its database, not delivery.
type alertStandIn struct {
	notificationv1connect.UnimplementedNotificationServiceHandler
	alerts *ledger
}

func (s *alertStandIn) SendNotification(_ context.Context, req *notificationv1.SendNotificationRequest) (*notificationv1.SendNotificationResponse, error) {
	s.alerts.record(req.GetIdempotencyKey(), req.GetSubjectVisitId())
	return &notificationv1.SendNotificationResponse{}, nil
}

// staffStandIn is the patient service's ListSiteStaff, which the notification
// service asks at send time who a site's staff are: one investigator per site.
type staffStandIn struct {
	patientv1connect.UnimplementedAuthServiceHandler
}

// staffID is the one investigator of every site.
const staffID = "investigator-1"

func (staffStandIn) ListSiteStaff(context.Context, *patientv1.ListSiteStaffRequest) (*patientv1.ListSiteStaffResponse, error) {
	return &patientv1.ListSiteStaffResponse{Staff: []*patientv1.SiteStaffMember{
		{StaffId: staffID, Role: authzv1.Role_ROLE_INVESTIGATOR}}}, nil
}

func (s *trialStandIn) GetTrial(_ context.Context, req *trialv1.GetTrialRequest) (*trialv1.GetTrialResponse, error) {
	if req.GetTrialId() != s.trialID {
		return nil, connect.NewError(connect.CodeNotFound, "trial not found")
	}
	return &trialv1.GetTrialResponse{Trial: &trialv1.Trial{TrialId: s.trialID},
		Sites: []*trialv1.Site{{SiteId: siteID, TrialId: s.trialID, TimeZone: "Europe/Berlin"}}}, nil
}

// world is what the services of a proof share: one signer every process
// trusts, and the stand-ins for the trial service, the patient service's staff
// lookup and (when alerts is set) a notification service that only records.
type world struct {
	signer   *auth.Signer
	standIns *process
	trial    *trialStandIn
	alerts   *alertStandIn
}

func newWorld(t testing.TB, alerts bool) *world {
	t.Helper()
	w := &world{signer: platformtest.NewSigner(t),
		trial:  &trialStandIn{trialID: uuid.NewString(), copied: map[string]bool{}, completions: newLedger()},
		alerts: &alertStandIn{alerts: newLedger()}}
	w.standIns = startProcess(t, processConfig{
		services: []platform.Service{{Name: "standins", Mount: func(_ context.Context, m *platform.Mount) error {
			trialv1connect.RegisterTrialServiceHandler(m.RPC(), w.trial)
			patientv1connect.RegisterAuthServiceHandler(m.RPC(), staffStandIn{})
			if alerts {
				notificationv1connect.RegisterNotificationServiceHandler(m.RPC(), w.alerts)
			}
			return nil
		}}},
		dsn:    "sqlite:" + t.TempDir() + "/standins.db",
		signer: w.signer,
	})
	return w
}

// fastRetries is River's backoff shrunk for tests: attempt^2 x 50 ms, at most
// 2 s, instead of attempt^4 s. A dependency's return is seen within 2 s, and a
// job's 25 attempts still outlast an outage of 40 s, as in production they
// outlast weeks (a fixed short delay would spend them in seconds and turn
// every waiting alert into a dead letter).
type fastRetries struct{}

func (fastRetries) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(min(time.Duration(job.Attempt*job.Attempt)*50*time.Millisecond, 2*time.Second))
}

// startEpro runs ePRO (seeded: PHQ-9 and GAD-7 active) on dsn with its trial
// dependency on the stand-in and its notification dependency at notifyURL (the
// alert stand-in when empty).
func (w *world) startEpro(t testing.TB, dsn, notifyURL string, log *slog.Logger, server ...platform.Option) *eproEnv {
	t.Helper()
	epro.PollEvery = 300 * time.Millisecond
	if notifyURL == "" {
		notifyURL = w.standIns.URL
	}
	p := startProcess(t, processConfig{
		services: []platform.Service{epro.Platform()},
		dsn:      dsn,
		deps:     map[string]string{epro.TrialDependency: w.standIns.URL, epro.NotificationDependency: notifyURL},
		signer:   w.signer,
		seed:     true,
		server:   server,
		jobs:     []jobs.Option{jobs.WithRetryPolicy(fastRetries{})},
		log:      log,
		tune:     func(d *client.Dependency) { d.Breaker.OpenFor = 500 * time.Millisecond },
	})
	e := &eproEnv{proc: p, signer: w.signer, trial: w.trial}
	e.phq9 = phq9Of(t, eprov1connect.NewEproServiceClient(clientTo(t, p.URL, w.signer, platformtest.Admin(), 10*time.Second)))
	return e
}

// eproEnv is ePRO running on the kit with its dependencies.
type eproEnv struct {
	proc   *process
	signer *auth.Signer
	trial  *trialStandIn
	phq9   *eprov1.Questionnaire
}

// clientTo returns a gRPC client to url calling as caller: one attempt, no
// breaker, the given timeout, so a proof sees every answer as it was sent.
func clientTo(t testing.TB, url string, signer *auth.Signer, caller auth.Caller, timeout time.Duration) *connect.Client {
	t.Helper()
	token, _, err := signer.Sign(caller, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dep := client.Service("proof", url)
	dep.MaxAttempts, dep.Timeout, dep.Breaker.Disabled = 1, timeout, true
	return client.New(dep, client.WithTokens(auth.StaticToken(token)), client.WithLogger(slog.New(slog.DiscardHandler)))
}

// phq9Of finds the seeded PHQ-9 through the API.
func phq9Of(t testing.TB, admin eprov1connect.EproServiceClient) *eprov1.Questionnaire {
	t.Helper()
	res, err := admin.ListQuestionnaires(context.Background(), &eprov1.ListQuestionnairesRequest{
		Statuses: []eprov1.QuestionnaireStatus{eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range res.GetQuestionnaires() {
		if q.GetName() == "PHQ9" {
			return q
		}
	}
	t.Fatalf("the seed stored no PHQ-9 among %d questionnaires", len(res.GetQuestionnaires()))
	return nil
}

// answers answers every PHQ-9 item with its first option ("Not at all") except
// item 9, answered with its second ("Several days") when alert is set: the
// urgent safety alert rule fires (item 9 > 0).
func answers(t testing.TB, q *eprov1.Questionnaire, alert bool) []*eprov1.ItemAnswer {
	t.Helper()
	var out []*eprov1.ItemAnswer
	for _, it := range q.GetItems() {
		opts := it.GetAnswerOptions()
		if len(opts) == 0 {
			continue // the stem is display text
		}
		pick := opts[0]
		if alert && it.GetLinkId() == "9" {
			pick = opts[1]
		}
		out = append(out, &eprov1.ItemAnswer{LinkId: it.GetLinkId(), Values: []*eprov1.AnswerValue{
			{Value: &eprov1.AnswerValue_ValueCoding{ValueCoding: pick.GetValueCoding()}}}})
	}
	if len(out) != 9 {
		t.Fatalf("PHQ-9 has %d answerable items, want 9", len(out))
	}
	return out
}

// patient is one patient with open visits, each one submission to make.
type patient struct {
	caller auth.Caller
	epro   eprov1connect.EproServiceClient
	visits []string
}

// patients plans n visits for each of count new patients and waits until ePRO
// copied them (each patient's ListMyTasks shows them due).
func (e *eproEnv) patients(t testing.TB, count, visits int, timeout time.Duration) []*patient {
	t.Helper()
	out := make([]*patient, count)
	for i := range out {
		c := platformtest.Patient()
		out[i] = &patient{caller: c, visits: e.trial.plan(c.Subject, e.phq9.GetQuestionnaireId(), visits),
			epro: eprov1connect.NewEproServiceClient(clientTo(t, e.proc.URL, e.signer, c, timeout))}
	}
	for _, p := range out {
		eventually(t, "the patient's visits copied into ePRO", func() bool {
			n, req := 0, &eprov1.ListMyTasksRequest{TrialId: e.trial.trialID, PageSize: 200}
			for {
				res, err := p.epro.ListMyTasks(context.Background(), req)
				if err != nil {
					return false
				}
				n += len(res.GetTasks())
				if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
					return n >= visits
				}
			}
		})
		e.trial.settle(p.visits)
	}
	return out
}

// submit answers one of p's visits.
func (e *eproEnv) submit(ctx context.Context, p *patient, visit, key string, a []*eprov1.ItemAnswer) (*eprov1.SubmitResponseResponse, error) {
	return p.epro.SubmitResponse(ctx, &eprov1.SubmitResponseRequest{IdempotencyKey: key, TrialId: e.trial.trialID,
		SubjectVisitId: visit, QuestionnaireId: e.phq9.GetQuestionnaireId(), AuthoredAt: timestamppb.Now(), Answers: a})
}

// eventually polls cond for up to a minute: background work is awaited, not timed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// latencies collects call durations.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// q is the p-quantile (0.5, 0.99) by the nearest-rank method; 0 when empty.
func (l *latencies) q(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// figures is one phase of a proof, printed as one line (go test -v, make chaos).
type figures struct {
	phase                                     string
	submissions, ok, failed                   int
	p50, p99                                  time.Duration
	deliveries, duplicates, losses, shed, brk int
	extra                                     string
}

func (f figures) log(t testing.TB) {
	t.Helper()
	t.Logf("%-26s submissions=%d ok=%d failed=%d p50=%v p99=%v deliveries=%d duplicates=%d losses=%d shed=%d breaker_transitions=%d %s",
		f.phase, f.submissions, f.ok, f.failed, f.p50.Round(10*time.Microsecond), f.p99.Round(10*time.Microsecond),
		f.deliveries, f.duplicates, f.losses, f.shed, f.brk, f.extra)
}
