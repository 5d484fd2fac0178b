package epro_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// trialStandIn is a real TrialService handler on a real listener, standing in
// for services/trial so that a test can set the worklist, take the trial service
// down and count what reached it: it serves a worklist and records completions
// (once per idempotency key, as the trial service does). The real services run
// together in services/stack's tests and proofs.
type trialStandIn struct {
	trialv1connect.UnimplementedTrialServiceHandler
	mu          sync.Mutex
	trialID     string
	visits      []*trialv1.SubjectVisit
	completions map[string]*trialv1.RecordVisitCompletionRequest   // by idempotency key
	withdrawals map[string]*trialv1.WithdrawVisitCompletionRequest // by idempotency key, those that withdrew
	down        atomic.Bool
	grace       atomic.Int32 // the trial's late_submission_grace_hours
}

func (t *trialStandIn) ListTrials(context.Context, *trialv1.ListTrialsRequest) (*trialv1.ListTrialsResponse, error) {
	if t.down.Load() {
		return nil, connect.NewError(connect.CodeUnavailable, "down")
	}
	return &trialv1.ListTrialsResponse{Trials: []*trialv1.Trial{{TrialId: t.trialID, LateSubmissionGraceHours: t.grace.Load()}}}, nil
}

func (t *trialStandIn) ListWorklist(_ context.Context, req *trialv1.ListWorklistRequest) (*trialv1.ListWorklistResponse, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := &trialv1.ListWorklistResponse{}
	for _, v := range t.visits {
		if req.GetUpdatedAfter() == nil || v.GetUpdatedAt().AsTime().After(req.GetUpdatedAfter().AsTime()) {
			res.Visits = append(res.Visits, v)
		}
	}
	return res, nil
}

func (t *trialStandIn) RecordVisitCompletion(_ context.Context, req *trialv1.RecordVisitCompletionRequest) (*trialv1.RecordVisitCompletionResponse, error) {
	if t.down.Load() {
		return nil, connect.NewError(connect.CodeUnavailable, "down")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.completions[req.GetIdempotencyKey()] = req
	return &trialv1.RecordVisitCompletionResponse{}, nil
}

// WithdrawVisitCompletion undoes a recorded completion of the visit that names
// the source reference, as the trial service does: a no-op when the visit has
// none, FAILED_PRECONDITION when its completion names other records.
func (t *trialStandIn) WithdrawVisitCompletion(_ context.Context, req *trialv1.WithdrawVisitCompletionRequest) (*trialv1.WithdrawVisitCompletionResponse, error) {
	if t.down.Load() {
		return nil, connect.NewError(connect.CodeUnavailable, "down")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pending := &trialv1.WithdrawVisitCompletionResponse{Visit: &trialv1.SubjectVisit{SubjectVisitId: req.GetSubjectVisitId(),
		Status: trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING}}
	if t.completedVisit(req.GetSubjectVisitId()) == nil {
		return pending, nil
	}
	if !slices.Contains(t.completedVisit(req.GetSubjectVisitId()).GetSourceReferences(), req.GetSourceReference()) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, "source_reference: not a record that completed this visit")
	}
	t.withdrawals[req.GetIdempotencyKey()] = req
	return pending, nil
}

// completedVisit is the visit's completion in force: recorded and not withdrawn
// (t.mu held).
func (t *trialStandIn) completedVisit(visitID string) *trialv1.RecordVisitCompletionRequest {
	var done *trialv1.RecordVisitCompletionRequest
	for _, c := range t.completions {
		if c.GetSubjectVisitId() == visitID {
			done = c
		}
	}
	for _, w := range t.withdrawals {
		if w.GetSubjectVisitId() == visitID {
			return nil
		}
	}
	return done
}

func (t *trialStandIn) visitState(visitID string) (completed bool, withdrawals int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.withdrawals {
		if w.GetSubjectVisitId() == visitID {
			withdrawals++
		}
	}
	return t.completedVisit(visitID) != nil, withdrawals
}

func (t *trialStandIn) addVisit(subject, questionnaireID string, opens, closes time.Time, status trialv1.SubjectVisitStatus) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := uuid.NewString()
	t.visits = append(t.visits, &trialv1.SubjectVisit{
		SubjectVisitId: id, EnrollmentId: uuid.NewString(), TrialId: t.trialID, SubjectUuid: subject, VisitCode: "W04", VisitName: "Week 4",
		WindowOpensAt: timestamppb.New(opens), WindowClosesAt: timestamppb.New(closes), Status: status,
		Questionnaires: []*trialv1.QuestionnaireRef{{Ref: &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: questionnaireID}, Version: "1.0.0"}}, SiteId: siteID,
		UpdatedAt: timestamppb.New(time.Now().UTC()), EnrollmentDate: opens.UTC().Format(time.DateOnly), SiteTimeZone: "UTC", SiteCode: "DE-001",
	})
	return id
}

// put plans a visit as given (its id, trial and updated_at are set here).
func (t *trialStandIn) put(v *trialv1.SubjectVisit) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	v.SubjectVisitId, v.TrialId, v.UpdatedAt = uuid.NewString(), t.trialID, timestamppb.New(time.Now().UTC())
	if v.EnrollmentId == "" {
		v.EnrollmentId = uuid.NewString()
	}
	t.visits = append(t.visits, v)
	return v.SubjectVisitId
}

func (t *trialStandIn) completionCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.completions)
}

// notificationStandIn is a real NotificationService handler (the notification
// service does not exist yet); it counts alerts per idempotency key.
type notificationStandIn struct {
	notificationv1connect.UnimplementedNotificationServiceHandler
	mu    sync.Mutex
	sent  map[string]int
	calls atomic.Int32
	down  atomic.Bool
}

func (n *notificationStandIn) SendNotification(_ context.Context, req *notificationv1.SendNotificationRequest) (*notificationv1.SendNotificationResponse, error) {
	n.calls.Add(1)
	if n.down.Load() {
		return nil, connect.NewError(connect.CodeUnavailable, "down")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent[req.GetIdempotencyKey()]++
	return &notificationv1.SendNotificationResponse{}, nil
}

func (n *notificationStandIn) keys() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sent)
}

const siteID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"

type fixture struct {
	env     *platformtest.Env
	admin   eprov1connect.EproServiceClient
	patient eprov1connect.EproServiceClient
	subject string
	trial   *trialStandIn
	notify  *notificationStandIn
	phq9    *eprov1.Questionnaire
}

func setup(t testing.TB) *fixture { return setupReplicas(t, 1) }

// setupReplicas runs n replicas of the service on one PostgreSQL database, each
// with its own River workers; the fixture talks to the first.
func setupReplicas(t testing.TB, n int) *fixture {
	t.Helper()
	epro.PollEvery = 100 * time.Millisecond
	tr := &trialStandIn{trialID: uuid.NewString(), completions: map[string]*trialv1.RecordVisitCompletionRequest{},
		withdrawals: map[string]*trialv1.WithdrawVisitCompletionRequest{}}
	tr.grace.Store(24)
	ns := &notificationStandIn{sent: map[string]int{}}
	signer := platformtest.NewSigner(t)
	// The stand-ins run on the kit too: a real listener, the whole chain, tokens checked.
	standIns := platformtest.Start(t, platform.Service{Name: "standins", Mount: func(_ context.Context, m *platform.Mount) error {
		trialv1connect.RegisterTrialServiceHandler(m.RPC(), tr)
		notificationv1connect.RegisterNotificationServiceHandler(m.RPC(), ns)
		return nil
	}}, platformtest.WithSigner(signer), platformtest.WithSQLite())
	dsn := pgtest.New(t)
	var env *platformtest.Env
	for i := range n {
		e := platformtest.Start(t, epro.Platform(), platformtest.WithDSN(dsn), platformtest.WithSigner(signer),
			platformtest.WithDependency(epro.TrialDependency, standIns.URL), platformtest.WithDependency(epro.NotificationDependency, standIns.URL))
		if i == 0 {
			env = e
		}
	}
	admin := eprov1connect.NewEproServiceClient(env.Client(t, platformtest.Admin()))
	created, err := admin.CreateQuestionnaire(context.Background(), epro.SeedRequest(instruments.PHQ9()))
	if err != nil {
		t.Fatal(err)
	}
	caller := platformtest.Patient()
	return &fixture{env: env, admin: admin, patient: eprov1connect.NewEproServiceClient(env.Client(t, caller)),
		subject: caller.Subject, trial: tr, notify: ns, phq9: created.GetQuestionnaire()}
}

// eventually polls cond with a generous bound: background work is awaited, not timed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// visit plans a visit in the stand-in and waits until the poller copied it.
func (f *fixture) visit(t testing.TB, opens, closes time.Time, status trialv1.SubjectVisitStatus) string {
	t.Helper()
	id := f.trial.addVisit(f.subject, f.phq9.GetQuestionnaireId(), opens, closes, status)
	eventually(t, "the visit copied", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id = $1`, id) == 1
	})
	return id
}

// phq9Answers answers the nine PHQ-9 items with the given option indexes (0-3).
func phq9Answers(t testing.TB, scores [9]int) []*eprov1.ItemAnswer {
	t.Helper()
	d := instruments.PHQ9()
	var out []*eprov1.ItemAnswer
	for i := range 9 {
		it := d.Item(fmt.Sprint(i + 1))
		out = append(out, &eprov1.ItemAnswer{LinkId: it.LinkID, Values: []*eprov1.AnswerValue{contract.AnswerValue(it.Options[scores[i]].Value)}})
	}
	return out
}

func total(n int) [9]int {
	var s [9]int
	for i := 0; n > 0; i = (i + 1) % 8 { // item 9 stays 0: no safety alert
		s[i]++
		n--
	}
	return s
}

func (f *fixture) submit(ctx context.Context, key, visitID string, authored time.Time, answers []*eprov1.ItemAnswer) (*eprov1.SubmitResponseResponse, error) {
	return f.patient.SubmitResponse(ctx, &eprov1.SubmitResponseRequest{IdempotencyKey: key, TrialId: f.trial.trialID,
		SubjectVisitId: visitID, QuestionnaireId: f.phq9.GetQuestionnaireId(), AuthoredAt: timestamppb.New(authored), Answers: answers})
}

func detailOf(t *testing.T, err error) *eprov1.PreconditionFailure {
	t.Helper()
	var cerr *connect.Error
	if !errors.As(err, &cerr) || len(cerr.Details()) != 1 {
		t.Fatalf("no typed detail on %v", err)
	}
	d := &eprov1.PreconditionFailure{}
	if err := proto.Unmarshal(cerr.Details()[0].Value, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSubmitPHQ9BandEdges(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, tc := range []struct {
		total int
		band  string
	}{{0, "Minimal"}, {4, "Minimal"}, {5, "Mild"}, {9, "Mild"}, {10, "Moderate"}, {14, "Moderate"},
		{15, "Moderately severe"}, {19, "Moderately severe"}, {20, "Severe"}, {24, "Severe"}} {
		visitID := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
		res, err := f.submit(ctx, fmt.Sprintf("band-edge-total-%02d", tc.total), visitID, now, phq9Answers(t, total(tc.total)))
		if err != nil {
			t.Fatalf("total %d: %v", tc.total, err)
		}
		sc := res.GetReceipt().GetScores()
		if len(sc) != 1 || sc[0].GetValue() != float64(tc.total) || sc[0].GetBand().GetLabel() != tc.band {
			t.Fatalf("total %d: scores %v, want band %q", tc.total, sc, tc.band)
		}
		if len(res.GetReceipt().GetFiredAlerts()) != 0 || res.GetReceipt().GetLate() {
			t.Fatalf("total %d: alerts %v late %v", tc.total, res.GetReceipt().GetFiredAlerts(), res.GetReceipt().GetLate())
		}
	}
	// Each visit's only questionnaire is answered: one completion per visit reaches the trial service.
	eventually(t, "10 visit completions", func() bool { return f.trial.completionCount() == 10 })
}

func TestSubmitRefusalsAndWindow(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	open := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)

	answers := phq9Answers(t, total(3))
	_, err := f.submit(ctx, "missing-item-000001", open, now, answers[:8])
	wantCode(t, err, connect.CodeInvalidArgument, "9")

	_, err = f.submit(ctx, "unknown-visit-000001", uuid.NewString(), now, answers)
	wantCode(t, err, connect.CodeFailedPrecondition, "subject_visit_id")
	if d := detailOf(t, err); d.GetReason() != eprov1.PreconditionReason_PRECONDITION_REASON_NOT_ENROLLED {
		t.Fatalf("reason %v", d.GetReason())
	}

	future := f.visit(t, now.Add(time.Hour), now.Add(2*time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	_, err = f.submit(ctx, "not-yet-open-000001", future, now, answers)
	wantCode(t, err, connect.CodeFailedPrecondition, "authored_at")
	if d := detailOf(t, err); d.GetReason() != eprov1.PreconditionReason_PRECONDITION_REASON_WINDOW_NOT_OPEN || d.GetWindowOpensAt() == nil {
		t.Fatalf("detail %v", d)
	}

	// Authored in the window, arriving after it closed, within the 24 h grace: late.
	closed := f.visit(t, now.Add(-3*time.Hour), now.Add(-time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	res, err := f.submit(ctx, "late-within-grace01", closed, now.Add(-2*time.Hour), answers)
	if err != nil || !res.GetReceipt().GetLate() {
		t.Fatalf("late submission: %v %v", res, err)
	}
	// Authored after the window closed: quarantined, not lost.
	closed2 := f.visit(t, now.Add(-3*time.Hour), now.Add(-time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	res, err = f.submit(ctx, "after-the-window-01", closed2, now, answers)
	if err != nil || res.GetQuarantined().GetReason() != eprov1.QuarantineReason_QUARANTINE_REASON_WINDOW_CLOSED {
		t.Fatalf("closed window: %v %v", res, err)
	}
	// A second device answering the same visit: quarantined with the first response's id.
	first, err := f.submit(ctx, "device-one-0000001", open, now, answers)
	if err != nil {
		t.Fatal(err)
	}
	res, err = f.submit(ctx, "device-two-0000001", open, now, answers)
	if err != nil || res.GetQuarantined().GetReason() != eprov1.QuarantineReason_QUARANTINE_REASON_ALREADY_ANSWERED ||
		res.GetQuarantined().GetExistingResponseId() != first.GetReceipt().GetResponseId() {
		t.Fatalf("second device: %v %v", res, err)
	}
	// A withdrawn subject's visit is cancelled in the trial service: quarantined.
	cancelled := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED)
	res, err = f.submit(ctx, "withdrawn-subject01", cancelled, now, answers)
	if err != nil || res.GetQuarantined().GetReason() != eprov1.QuarantineReason_QUARANTINE_REASON_SUBJECT_WITHDRAWN {
		t.Fatalf("withdrawn: %v %v", res, err)
	}
	if n := count(t, f.env, `SELECT COUNT(*) FROM quarantines`); n != 3 {
		t.Fatalf("%d quarantined, want 3", n)
	}
	if n := count(t, f.env, `SELECT COUNT(*) FROM audit_events WHERE action = 'SUBMISSION_QUARANTINED'`); n != 3 {
		t.Fatalf("%d quarantine events, want 3", n)
	}
	if n := count(t, f.env, `SELECT COUNT(*) FROM responses`); n != 2 {
		t.Fatalf("%d responses, want 2 (late + device one)", n)
	}
	tasks, err := f.patient.ListMyTasks(ctx, &eprov1.ListMyTasksRequest{Statuses: []eprov1.TaskStatus{eprov1.TaskStatus_TASK_STATUS_COMPLETED}})
	if err != nil || len(tasks.GetTasks()) != 2 || tasks.GetTasks()[0].GetRevision() != 1 {
		t.Fatalf("completed tasks: %v %v", tasks, err)
	}

	// The grace period is the trial's: at 1 h, what 24 h let in two hours late
	// is quarantined; the copies of visits already made take the new value too.
	f.trial.grace.Store(1)
	eventually(t, "the trial's grace on every copy", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE grace_hours IS DISTINCT FROM 1`) == 0
	})
	closed3 := f.visit(t, now.Add(-4*time.Hour), now.Add(-2*time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	res, err = f.submit(ctx, "beyond-trial-grace1", closed3, now.Add(-3*time.Hour), answers)
	if err != nil || res.GetQuarantined().GetReason() != eprov1.QuarantineReason_QUARANTINE_REASON_WINDOW_CLOSED {
		t.Fatalf("two hours late with a 1 h grace: %v %v", res, err)
	}
}

func TestSubmitIdempotencyRace(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	visitID := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	answers := phq9Answers(t, total(12))
	const n = 20
	receipts := make([]*eprov1.SubmitResponseResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { receipts[i], errs[i] = f.submit(ctx, "race-same-key-000001", visitID, now, answers) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !proto.Equal(receipts[i], receipts[0]) || receipts[i].GetReceipt() == nil {
			t.Fatalf("submission %d: %v (receipt %v)", i, errs[i], receipts[i])
		}
	}
	if c := count(t, f.env, `SELECT COUNT(*) FROM responses`); c != 1 {
		t.Fatalf("%d response rows, want 1", c)
	}
	other := phq9Answers(t, total(13))
	_, err := f.submit(ctx, "race-same-key-000001", visitID, now, other)
	wantCode(t, err, connect.CodeAlreadyExists, "")
}

func TestSafetyAlertDeliveredAfterOutage(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	visitID := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	f.trial.down.Store(true)
	f.notify.down.Store(true)
	scores := total(5)
	scores[8] = 1 // item 9 > 0
	res, err := f.submit(ctx, "item-nine-alert-001", visitID, now, phq9Answers(t, scores))
	if err != nil {
		t.Fatalf("submission while trial and notification are down: %v", err)
	}
	if fired := res.GetReceipt().GetFiredAlerts(); len(fired) != 1 || fired[0].GetAlertRuleName() != "item9_self_harm" {
		t.Fatalf("fired %v", fired)
	}
	eventually(t, "a refused alert attempt", func() bool {
		if f.notify.calls.Load() > 0 {
			return true
		}
		return false
	})
	if f.notify.keys() != 0 || f.trial.completionCount() != 0 {
		t.Fatal("delivered while down")
	}
	f.trial.down.Store(false)
	f.notify.down.Store(false)
	eventually(t, "the alert and the completion delivered", func() bool { return f.notify.keys() == 1 && f.trial.completionCount() == 1 })
	f.notify.mu.Lock()
	defer f.notify.mu.Unlock()
	for key, times := range f.notify.sent {
		if times != 1 {
			t.Fatalf("alert %s sent %d times", key, times)
		}
	}
}

func TestQuarantineResolutions(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	answers := phq9Answers(t, total(7))
	var ids []string
	for i := range 2 {
		closed := f.visit(t, now.Add(-3*time.Hour), now.Add(-time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
		res, err := f.submit(ctx, fmt.Sprintf("after-window-%06d", i), closed, now, answers)
		if err != nil || res.GetQuarantined() == nil {
			t.Fatalf("quarantine %d: %v %v", i, res, err)
		}
		ids = append(ids, res.GetQuarantined().GetQuarantineId())
	}
	investigator := func(site, trial string) eprov1connect.EproServiceClient {
		c := platformtest.Investigator(site)
		c.Trials = []string{trial}
		return eprov1connect.NewEproServiceClient(f.env.Client(t, c))
	}
	other := investigator(uuid.NewString(), f.trial.trialID)
	_, err := other.ListQuarantine(ctx, &eprov1.ListQuarantineRequest{TrialId: f.trial.trialID, SiteId: siteID})
	wantCode(t, err, connect.CodePermissionDenied, "site_id")
	// The site's investigator in another trial sees and resolves nothing of this one.
	otherTrial := investigator(siteID, uuid.NewString())
	_, err = otherTrial.ListQuarantine(ctx, &eprov1.ListQuarantineRequest{TrialId: f.trial.trialID})
	wantCode(t, err, connect.CodePermissionDenied, "trial_id")
	_, err = otherTrial.ResolveQuarantine(ctx, &eprov1.ResolveQuarantineRequest{IdempotencyKey: "resolve-other-trial", QuarantineId: ids[0],
		Resolution: eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_REJECT, Reason: "Not this trial's site staff"})
	wantCode(t, err, connect.CodePermissionDenied, "quarantine_id")
	inv := investigator(siteID, f.trial.trialID)
	list, err := inv.ListQuarantine(ctx, &eprov1.ListQuarantineRequest{TrialId: f.trial.trialID})
	if err != nil || len(list.GetSubmissions()) != 2 || list.GetSubmissions()[0].GetVisitCode() != "W04" ||
		list.GetSubmissions()[0].GetHoursAfterWindow() != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	_, err = other.ResolveQuarantine(ctx, &eprov1.ResolveQuarantineRequest{IdempotencyKey: "resolve-foreign-01", QuarantineId: ids[0],
		Resolution: eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_ACCEPT, Reason: "Phone was offline in hospital"})
	wantCode(t, err, connect.CodePermissionDenied, "")
	acc, err := inv.ResolveQuarantine(ctx, &eprov1.ResolveQuarantineRequest{IdempotencyKey: "resolve-accept-001", QuarantineId: ids[0],
		Resolution: eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_ACCEPT, Reason: "Phone was offline in hospital"})
	if err != nil || acc.GetSubmission().GetState() != eprov1.QuarantineState_QUARANTINE_STATE_ACCEPTED || acc.GetSubmission().GetResponseId() == "" {
		t.Fatalf("accept: %v %v", acc, err)
	}
	rej, err := inv.ResolveQuarantine(ctx, &eprov1.ResolveQuarantineRequest{IdempotencyKey: "resolve-reject-001", QuarantineId: ids[1],
		Resolution: eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_REJECT, Reason: "Answered for the wrong week"})
	if err != nil || rej.GetSubmission().GetState() != eprov1.QuarantineState_QUARANTINE_STATE_REJECTED || rej.GetSubmission().GetResponseId() != "" {
		t.Fatalf("reject: %v %v", rej, err)
	}
	_, err = inv.ResolveQuarantine(ctx, &eprov1.ResolveQuarantineRequest{IdempotencyKey: "resolve-again-0001", QuarantineId: ids[1],
		Resolution: eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_ACCEPT, Reason: "Changed our mind today"})
	wantCode(t, err, connect.CodeFailedPrecondition, "already resolved")
	if n := count(t, f.env, `SELECT COUNT(*) FROM responses WHERE protocol_deviation AND response_id = $1`, ids[0]); n != 1 {
		t.Fatalf("%d deviation responses, want 1", n)
	}
	for _, action := range []string{"QUARANTINE_ACCEPTED", "QUARANTINE_REJECTED"} {
		if n := count(t, f.env, `SELECT COUNT(*) FROM audit_events WHERE action = $1 AND reason <> ''`, action); n != 1 {
			t.Fatalf("%d %s events, want 1", n, action)
		}
	}
}

func TestPatientViewOfQuestionnaires(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// Not assigned yet: NOT_FOUND, as for an unknown id.
	_, err := f.patient.GetMyQuestionnaire(ctx, &eprov1.GetMyQuestionnaireRequest{QuestionnaireId: f.phq9.GetQuestionnaireId()})
	wantCode(t, err, connect.CodeNotFound, "questionnaire")
	f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	res, err := f.patient.GetMyQuestionnaire(ctx, &eprov1.GetMyQuestionnaireRequest{QuestionnaireId: f.phq9.GetQuestionnaireId()})
	if err != nil {
		t.Fatal(err)
	}
	pq := res.GetQuestionnaire()
	if len(pq.GetItems()) != len(f.phq9.GetItems()) || len(pq.GetScoringRules()) != 1 || !pq.GetShowScoresToPatient() {
		t.Fatalf("patient view %v", pq)
	}
	// No alert rule, threshold or author reaches the patient, in any field.
	wire, err := proto.Marshal(pq)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"item9_self_harm", f.phq9.GetCreatedBy()} {
		if strings.Contains(string(wire), secret) {
			t.Fatalf("patient view carries %q", secret)
		}
	}
}

func TestAmendmentHistory(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	visitID := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	first, err := f.submit(ctx, "amend-original-0001", visitID, now, phq9Answers(t, total(4)))
	if err != nil {
		t.Fatal(err)
	}
	id := first.GetReceipt().GetResponseId()
	amend := func(c eprov1connect.EproServiceClient, key string, rev int32, action eprov1.AmendAction, answers []*eprov1.ItemAnswer) (*eprov1.AmendResponseResponse, error) {
		return c.AmendResponse(ctx, &eprov1.AmendResponseRequest{IdempotencyKey: key, ResponseId: id, ExpectedRevision: rev,
			Action: action, Answers: answers, Reason: "Tapped the wrong option on item 1"})
	}
	corrected := total(4)
	corrected[0] = 3 // total 6: Mild
	res, err := amend(f.patient, "amend-correct-00001", 1, eprov1.AmendAction_AMEND_ACTION_CORRECT_ANSWERS, phq9Answers(t, corrected))
	if err != nil || res.GetReceipt().GetRevision() != 2 || res.GetReceipt().GetScores()[0].GetBand().GetLabel() != "Mild" ||
		res.GetReceipt().GetStatus() != eprov1.ResponseStatus_RESPONSE_STATUS_AMENDED {
		t.Fatalf("correction: %v %v", res, err)
	}
	_, err = amend(f.patient, "amend-stale-000001", 1, eprov1.AmendAction_AMEND_ACTION_CORRECT_ANSWERS, phq9Answers(t, corrected))
	wantCode(t, err, connect.CodeAborted, "expected_revision")
	inv := eprov1connect.NewEproServiceClient(f.env.Client(t, platformtest.Investigator(siteID)))
	_, err = amend(inv, "amend-by-site-0001", 2, eprov1.AmendAction_AMEND_ACTION_CORRECT_ANSWERS, phq9Answers(t, corrected))
	wantCode(t, err, connect.CodePermissionDenied, "action")
	res, err = amend(inv, "amend-error-000001", 2, eprov1.AmendAction_AMEND_ACTION_MARK_ENTERED_IN_ERROR, nil)
	if err != nil || res.GetReceipt().GetStatus() != eprov1.ResponseStatus_RESPONSE_STATUS_ENTERED_IN_ERROR {
		t.Fatalf("entered in error: %v %v", res, err)
	}
	_, err = amend(f.patient, "amend-after-error1", 3, eprov1.AmendAction_AMEND_ACTION_CORRECT_ANSWERS, phq9Answers(t, corrected))
	wantCode(t, err, connect.CodeFailedPrecondition, "entered in error")
	// Both revisions stay readable to the patient, and another subject gets NOT_FOUND.
	mine, err := f.patient.GetMyResponse(ctx, &eprov1.GetMyResponseRequest{ResponseId: id, Revision: 1})
	if err != nil || mine.GetLatestRevision() != 3 || mine.GetReceipt().GetScores()[0].GetValue() != 4 {
		t.Fatalf("revision 1: %v %v", mine, err)
	}
	mine, err = f.patient.GetMyResponse(ctx, &eprov1.GetMyResponseRequest{ResponseId: id, Revision: 2})
	if err != nil || mine.GetReceipt().GetScores()[0].GetValue() != 6 || len(mine.GetAnswers()) != 9 {
		t.Fatalf("revision 2: %v %v", mine, err)
	}
	stranger := eprov1connect.NewEproServiceClient(f.env.Client(t, platformtest.Patient()))
	_, err = stranger.GetMyResponse(ctx, &eprov1.GetMyResponseRequest{ResponseId: id})
	wantCode(t, err, connect.CodeNotFound, "response")
	// Every revision is kept; only the last is current.
	if n := count(t, f.env, `SELECT COUNT(*) FROM responses WHERE response_id = $1`, id); n != 3 {
		t.Fatalf("%d revisions, want 3", n)
	}
	if n := count(t, f.env, `SELECT COUNT(*) FROM responses WHERE response_id = $1 AND current`, id); n != 1 {
		t.Fatalf("%d current revisions, want 1", n)
	}
	// Item 1 changed: one RESPONSE_AMENDED event with the reason; then the status change.
	if n := count(t, f.env, `SELECT COUNT(*) FROM audit_events WHERE action = 'RESPONSE_AMENDED' AND field = 'answers.1' AND reason <> ''`); n != 1 {
		t.Fatalf("%d item events, want 1", n)
	}
	if n := count(t, f.env, `SELECT COUNT(*) FROM audit_events WHERE action = 'RESPONSE_ENTERED_IN_ERROR'`); n != 1 {
		t.Fatalf("%d entered-in-error events, want 1", n)
	}
}

// TestJobsOnceWithTwoReplicas: two processes work one queue; every alert and
// completion reaches its service once.
func TestJobsOnceWithTwoReplicas(t *testing.T) {
	f := setupReplicas(t, 2)
	ctx := context.Background()
	now := time.Now().UTC()
	scores := total(3)
	scores[8] = 2
	const n = 6
	for i := range n {
		visitID := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
		if _, err := f.submit(ctx, fmt.Sprintf("two-replicas-%06d", i), visitID, now, phq9Answers(t, scores)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every alert and completion", func() bool { return f.notify.keys() == n && f.trial.completionCount() == n })
	f.notify.mu.Lock()
	defer f.notify.mu.Unlock()
	for key, times := range f.notify.sent {
		if times != 1 {
			t.Fatalf("alert %s sent %d times", key, times)
		}
	}
	if calls := f.notify.calls.Load(); calls != n {
		t.Fatalf("%d SendNotification calls for %d alerts", calls, n)
	}
}
