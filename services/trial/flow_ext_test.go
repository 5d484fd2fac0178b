package trial_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The whole flow on PostgreSQL: create a trial, open recruitment, add sites,
// define a schedule, enroll, read the plan, complete (twice: one completion),
// withdraw the completion, miss, withdraw the subject, change the schedule
// with a re-plan, move a plan back, read the de-identified view and the audit
// trail.
func TestFlow(t *testing.T) {
	t.Run("postgres", func(t *testing.T) { flow(t) })
	// The dev stack's embedded database runs the same flow.
	t.Run("sqlite", func(t *testing.T) { flow(t, platformtest.WithSQLite()) })
}

func flow(t *testing.T, opts ...platformtest.Option) {
	ctx := context.Background()
	h := start(t, opts...)
	api := h.api(t, admin())
	trialID, shanghai, newYork := recruitingTrial(t, ctx, api, schedule())

	// 12:00 in Shanghai on 2025-03-10, 00:00 in New York.
	h.clock.set(at(t, "2025-03-10T04:00:00Z"))
	a, b := uuid.NewString(), uuid.NewString()
	h.patients.set(a, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	h.patients.set(b, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	inv := h.api(t, investigator([]string{shanghai}, []string{trialID}))
	enrolled, err := inv.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID, SiteId: shanghai, SubjectUuid: a,
		EnrollmentDate: "2025-03-10", IdempotencyKey: key()})
	if err != nil {
		t.Fatal(err)
	}
	if got := enrolled.GetEnrollment().GetStatus(); got != trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED {
		t.Fatalf("enrollment status %s", got)
	}
	if n := len(enrolled.GetVisits()); n != 3 {
		t.Fatalf("%d planned visits, want 3", n)
	}

	// The patient reads their own plan; the subject comes from the token.
	plan, err := h.api(t, patient(a)).GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{TrialId: trialID})
	if err != nil {
		t.Fatal(err)
	}
	if plan.GetTimeZone() != "Asia/Shanghai" {
		t.Errorf("plan zone %q", plan.GetTimeZone())
	}
	screening, baseline := visitByCode(t, plan.GetVisits(), "SCREENING"), visitByCode(t, plan.GetVisits(), "BASELINE")
	if screening.GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED || screening.GetPlannedDate() != "2025-03-03" {
		t.Errorf("screening (day -7): %s on %s, want MISSED on 2025-03-03", screening.GetStatus(), screening.GetPlannedDate())
	}
	if baseline.GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING ||
		!baseline.GetWindowOpensAt().AsTime().Equal(at(t, "2025-03-09T16:00:00Z")) ||
		!baseline.GetWindowClosesAt().AsTime().Equal(at(t, "2025-03-13T16:00:00Z")) {
		t.Errorf("baseline: %s [%s, %s)", baseline.GetStatus(), baseline.GetWindowOpensAt().AsTime(), baseline.GetWindowClosesAt().AsTime())
	}

	// Completion, retried with another key and another time: one completion.
	epro := h.api(t, platformtest.Service("epro"))
	ref := "epro:response/" + uuid.NewString()
	complete := func(when string, refs ...string) (*trialv1.RecordVisitCompletionResponse, error) {
		return epro.RecordVisitCompletion(ctx, &trialv1.RecordVisitCompletionRequest{SubjectUuid: a, TrialId: trialID,
			SubjectVisitId: baseline.GetSubjectVisitId(), CompletedAt: timestamppb.New(at(t, when)),
			SourceReferences: refs, IdempotencyKey: key()})
	}
	first := must[*trialv1.RecordVisitCompletionResponse](t, "RecordVisitCompletion")(complete("2025-03-11T02:00:00Z", ref))
	again := must[*trialv1.RecordVisitCompletionResponse](t, "RecordVisitCompletion again")(complete("2025-03-12T02:00:00Z", "epro:response/other"))
	if !again.GetVisit().GetCompletedAt().AsTime().Equal(at(t, "2025-03-11T02:00:00Z")) || again.GetVisit().GetSourceReferences()[0] != ref {
		t.Errorf("second completion changed the first: %v", again.GetVisit())
	}
	if first.GetVisit().GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED {
		t.Errorf("completed visit is %s", first.GetVisit().GetStatus())
	}

	// The response was entered in error: the completion is withdrawn, then recorded anew.
	_, err = epro.WithdrawVisitCompletion(ctx, &trialv1.WithdrawVisitCompletionRequest{SubjectUuid: a, TrialId: trialID,
		SubjectVisitId: baseline.GetSubjectVisitId(), SourceReference: "epro:response/other", Reason: "Entered in error", IdempotencyKey: key()})
	wantCode(t, "withdraw by a record that did not complete the visit", err, 9) // failed_precondition
	un, err := epro.WithdrawVisitCompletion(ctx, &trialv1.WithdrawVisitCompletionRequest{SubjectUuid: a, TrialId: trialID,
		SubjectVisitId: baseline.GetSubjectVisitId(), SourceReference: ref, Reason: "Entered in error", IdempotencyKey: key()})
	if err != nil {
		t.Fatal(err)
	}
	if un.GetVisit().GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING || un.GetVisit().GetCompletedAt() != nil {
		t.Errorf("after withdrawing the completion: %v", un.GetVisit())
	}
	must[*trialv1.RecordVisitCompletionResponse](t, "RecordVisitCompletion after withdrawal")(complete("2025-03-12T03:00:00Z", "epro:response/"+uuid.NewString()))

	// Withdrawal stops future visits: week 1 is cancelled, history stays.
	h.clock.set(at(t, "2025-03-12T04:00:00Z"))
	w, err := inv.WithdrawSubject(ctx, &trialv1.WithdrawSubjectRequest{EnrollmentId: enrolled.GetEnrollment().GetEnrollmentId(),
		ReasonCode: trialv1.WithdrawalReason_WITHDRAWAL_REASON_CONSENT_WITHDRAWN, Reason: "Consent withdrawn by phone",
		WithdrawalDate: "2025-03-12", IdempotencyKey: key()})
	if err != nil {
		t.Fatal(err)
	}
	if w.GetCancelledVisitCount() != 1 || w.GetEnrollment().GetEndStudyDay() != 3 {
		t.Errorf("withdrawal cancelled %d visits, end day %d; want 1 and 3", w.GetCancelledVisitCount(), w.GetEnrollment().GetEndStudyDay())
	}
	plan = must[*trialv1.GetSubjectVisitPlanResponse](t, "plan after withdrawal")(api.GetSubjectVisitPlan(ctx,
		&trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: a}))
	for code, want := range map[string]trialv1.SubjectVisitStatus{
		"SCREENING": trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED,
		"BASELINE":  trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED,
		"W01":       trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED,
	} {
		if got := visitByCode(t, plan.GetVisits(), code).GetStatus(); got != want {
			t.Errorf("%s after withdrawal: %s, want %s", code, got, want)
		}
	}

	// A schedule change with a re-plan moves subject B (New York), not withdrawn A.
	must[*trialv1.EnrollSubjectResponse](t, "enroll B")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
		SiteId: newYork, SubjectUuid: b, EnrollmentDate: "2025-03-11", IdempotencyKey: key()}))
	before := must[*trialv1.GetSubjectVisitPlanResponse](t, "plan of B")(api.GetSubjectVisitPlan(ctx,
		&trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: b}))
	v2 := schedule()
	v2[2].StudyDay = 10
	v2 = append(v2, &trialv1.Visit{Code: "W02", Name: "Week 2", StudyDay: 15, WindowBeforeDays: 2, WindowAfterDays: 2,
		Questionnaires: byURL("http://loinc.org/q/69737-5")})
	_, err = api.DefineVisitSchedule(ctx, &trialv1.DefineVisitScheduleRequest{TrialId: trialID, Visits: v2, BaseVersion: 0,
		ExistingPlanPolicy: trialv1.ExistingPlanPolicy_EXISTING_PLAN_POLICY_REPLAN_PENDING, Reason: "Amendment 1", IdempotencyKey: key()})
	wantCode(t, "schedule from a stale base version", err, 10) // aborted
	def, err := api.DefineVisitSchedule(ctx, &trialv1.DefineVisitScheduleRequest{TrialId: trialID, Visits: v2, BaseVersion: 1,
		ExistingPlanPolicy: trialv1.ExistingPlanPolicy_EXISTING_PLAN_POLICY_REPLAN_PENDING, Reason: "Amendment 1", IdempotencyKey: key()})
	if err != nil {
		t.Fatal(err)
	}
	if def.GetReplannedEnrollmentCount() != 1 || def.GetVisitSchedule().GetVersion() != 2 {
		t.Errorf("re-planned %d, version %d; want 1 and 2", def.GetReplannedEnrollmentCount(), def.GetVisitSchedule().GetVersion())
	}
	after := must[*trialv1.GetSubjectVisitPlanResponse](t, "plan of B after")(api.GetSubjectVisitPlan(ctx,
		&trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: b}))
	w01 := visitByCode(t, after.GetVisits(), "W01")
	if w01.GetSubjectVisitId() != visitByCode(t, before.GetVisits(), "W01").GetSubjectVisitId() ||
		w01.GetTargetStudyDay() != 10 || w01.GetPlannedDate() != "2025-03-20" || w01.GetVisitScheduleVersion() != 2 {
		t.Errorf("re-planned W01: %v", w01)
	}
	visitByCode(t, after.GetVisits(), "W02")
	if after.GetEnrollment().GetVisitScheduleVersion() != 2 {
		t.Errorf("B follows version %d", after.GetEnrollment().GetVisitScheduleVersion())
	}
	_, err = api.MoveToScheduleVersion(ctx, &trialv1.MoveToScheduleVersionRequest{EnrollmentId: after.GetEnrollment().GetEnrollmentId(),
		VisitScheduleVersion: 2, Reason: "Already there", IdempotencyKey: key()})
	wantCode(t, "move to the version the plan follows", err, 9)
	moved, err := api.MoveToScheduleVersion(ctx, &trialv1.MoveToScheduleVersionRequest{EnrollmentId: after.GetEnrollment().GetEnrollmentId(),
		VisitScheduleVersion: 1, Reason: "Re-consent declined", IdempotencyKey: key()})
	if err != nil {
		t.Fatal(err)
	}
	if got := visitByCode(t, moved.GetVisits(), "W02").GetStatus(); got != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED {
		t.Errorf("W02 after moving back to version 1: %s, want CANCELLED", got)
	}

	// Analysts: study days and statuses, no dates.
	deid, err := h.api(t, analyst(trialID)).ListDeidentifiedEnrollments(ctx, &trialv1.ListDeidentifiedEnrollmentsRequest{TrialId: trialID})
	if err != nil {
		t.Fatal(err)
	}
	if len(deid.GetEnrollments()) != 2 {
		t.Fatalf("%d de-identified enrollments, want 2", len(deid.GetEnrollments()))
	}
	ea := deid.GetEnrollments()[0]
	if ea.GetSubjectUuid() != a || ea.GetEndStudyDay() != 3 || ea.GetWithdrawalReason() != trialv1.WithdrawalReason_WITHDRAWAL_REASON_CONSENT_WITHDRAWN {
		t.Errorf("de-identified A: %v", ea)
	}
	for _, v := range ea.GetVisits() {
		if v.GetVisitCode() == "BASELINE" && v.GetCompletedStudyDay() != 3 { // 2025-03-12 11:00 in Shanghai
			t.Errorf("baseline completed on study day %d, want 3", v.GetCompletedStudyDay())
		}
	}
	_, err = h.api(t, analyst(trialID)).ListEnrollments(ctx, &trialv1.ListEnrollmentsRequest{TrialId: trialID})
	wantCode(t, "analyst calling ListEnrollments", err, 7) // permission_denied

	// The audit trail holds every change, with reasons, and is intact.
	ev := must[*trialv1.ListAuditEventsResponse](t, "ListAuditEvents")(api.ListAuditEvents(ctx, &trialv1.ListAuditEventsRequest{
		Actions: []trialv1.AuditAction{trialv1.AuditAction_AUDIT_ACTION_SUBJECT_WITHDRAWN, trialv1.AuditAction_AUDIT_ACTION_VISIT_COMPLETED,
			trialv1.AuditAction_AUDIT_ACTION_VISIT_COMPLETION_WITHDRAWN, trialv1.AuditAction_AUDIT_ACTION_PLAN_MOVED}}))
	count := map[trialv1.AuditAction]int{}
	for _, e := range ev.GetEvents() {
		count[e.GetAction()]++
		if e.GetAction() == trialv1.AuditAction_AUDIT_ACTION_SUBJECT_WITHDRAWN &&
			e.GetReason() != "WITHDRAWAL_REASON_CONSENT_WITHDRAWN: Consent withdrawn by phone" {
			t.Errorf("withdrawal reason on the trail: %q", e.GetReason())
		}
	}
	if count[trialv1.AuditAction_AUDIT_ACTION_VISIT_COMPLETED] != 2 || count[trialv1.AuditAction_AUDIT_ACTION_VISIT_COMPLETION_WITHDRAWN] != 1 ||
		count[trialv1.AuditAction_AUDIT_ACTION_SUBJECT_WITHDRAWN] != 1 || count[trialv1.AuditAction_AUDIT_ACTION_PLAN_MOVED] != 2 {
		t.Errorf("audit events %v; want 2 completions (a retry is none), 1 completion withdrawal, 1 withdrawal, 2 plan moves", count)
	}
	rep := must[*trialv1.VerifyAuditTrailResponse](t, "VerifyAuditTrail")(api.VerifyAuditTrail(ctx, &trialv1.VerifyAuditTrailRequest{}))
	// Trial, 2 sites, 2 schedule versions, opening, 2 enrollments, 2 completions,
	// 1 completion withdrawal, 1 withdrawal, 2 plan moves.
	if !rep.GetIntact() || rep.GetEventsChecked() != 14 {
		t.Errorf("audit trail: intact %v, %d events, want intact with 14", rep.GetIntact(), rep.GetEventsChecked())
	}
}
