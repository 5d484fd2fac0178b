package trial_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The worklist across subjects and sites: pages, scope, status and window
// filters, and updated_after as a poller's cursor.
func TestWorklist(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	api := h.api(t, admin())
	trialID, shanghai, newYork := recruitingTrial(t, ctx, api, schedule())
	h.clock.set(at(t, "2025-03-10T04:00:00Z"))
	var subjects []string
	for i, siteID := range []string{shanghai, shanghai, shanghai, newYork} {
		s := uuid.NewString()
		subjects = append(subjects, s)
		h.patients.set(s, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
		date := "2025-03-10"
		if i == 3 {
			date = "2025-03-09" // still 2025-03-09 in New York
		}
		must[*trialv1.EnrollSubjectResponse](t, "enroll")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
			SiteId: siteID, SubjectUuid: s, EnrollmentDate: date, IdempotencyKey: key()}))
	}
	// The screening windows closed before enrollment: WindowClosed writes them
	// MISSED in the background; wait for it so the cursor below is stable.
	d := h.env.DB(t)
	eventually(t, "the closed screening windows to be written MISSED", func() bool {
		var n int
		if err := d.ReadSQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM visits WHERE status = 3`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 4
	})

	var all []*trialv1.SubjectVisit
	req := &trialv1.ListWorklistRequest{TrialId: trialID, PageSize: 5}
	for pages := 1; ; pages++ {
		res, err := api.ListWorklist(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, res.GetVisits()...)
		if res.GetNextPageToken() == "" {
			if pages != 3 {
				t.Errorf("%d pages of 5 for 12 visits, want 3", pages)
			}
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	seen := map[string]bool{}
	for i, v := range all {
		seen[v.GetSubjectVisitId()] = true
		if i > 0 && v.GetUpdatedAt().AsTime().Before(all[i-1].GetUpdatedAt().AsTime()) {
			t.Errorf("visit %d updated before visit %d: not in cursor order", i, i-1)
		}
	}
	if len(all) != 12 || len(seen) != 12 {
		t.Fatalf("%d visits (%d distinct), want 12", len(all), len(seen))
	}
	// Each visit carries what a copy of the plan needs to count days: the
	// subject's enrollment date, the site's zone and code.
	for _, v := range all {
		wantDate, wantZone, wantCode := "2025-03-10", "Asia/Shanghai", "CN-001"
		if v.GetSiteId() == newYork {
			wantDate, wantZone, wantCode = "2025-03-09", "America/New_York", "US-001"
		}
		if v.GetEnrollmentDate() != wantDate || v.GetSiteTimeZone() != wantZone || v.GetSiteCode() != wantCode {
			t.Errorf("visit %s at %s: enrollment_date %q site_time_zone %q site_code %q, want %q %q %q", v.GetVisitCode(),
				v.GetSiteId(), v.GetEnrollmentDate(), v.GetSiteTimeZone(), v.GetSiteCode(), wantDate, wantZone, wantCode)
		}
	}
	last := all[len(all)-1].GetUpdatedAt()

	_, err := api.ListWorklist(ctx, &trialv1.ListWorklistRequest{TrialId: trialID, SiteId: shanghai, PageToken: req.GetPageToken()})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "page_token") {
		t.Errorf("page token with other filters: %v, want invalid_argument naming page_token", err)
	}

	// A New York investigator sees the New York subject's three visits only.
	ny, err := h.api(t, investigator([]string{newYork}, []string{trialID})).ListWorklist(ctx, &trialv1.ListWorklistRequest{TrialId: trialID})
	if err != nil || len(ny.GetVisits()) != 3 {
		t.Fatalf("New York worklist: %v, %d visits, want 3", err, len(ny.GetVisits()))
	}

	// "Due this week": pending visits whose window overlaps 2025-03-16..20.
	due := must[*trialv1.ListWorklistResponse](t, "due")(api.ListWorklist(ctx, &trialv1.ListWorklistRequest{TrialId: trialID,
		Statuses:       []trialv1.SubjectVisitStatus{trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING},
		WindowFromDate: "2025-03-16", WindowToDate: "2025-03-20"}))
	if len(due.GetVisits()) != 4 {
		t.Errorf("%d visits due 2025-03-16..20, want the 4 week-1 visits", len(due.GetVisits()))
	}
	for _, v := range due.GetVisits() {
		if v.GetVisitCode() != "W01" {
			t.Errorf("due that week: %s", v.GetVisitCode())
		}
	}
	missed := must[*trialv1.ListWorklistResponse](t, "missed")(api.ListWorklist(ctx, &trialv1.ListWorklistRequest{TrialId: trialID,
		Statuses: []trialv1.SubjectVisitStatus{trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED}}))
	if len(missed.GetVisits()) != 4 {
		t.Errorf("%d missed visits, want the 4 screenings", len(missed.GetVisits()))
	}

	// The poller's cursor: only what changed after the last visit seen.
	plan := must[*trialv1.GetSubjectVisitPlanResponse](t, "plan")(api.GetSubjectVisitPlan(ctx,
		&trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: subjects[0]}))
	baseline := visitByCode(t, plan.GetVisits(), "BASELINE")
	must[*trialv1.RecordVisitCompletionResponse](t, "complete")(h.api(t, platformtest.Service("epro")).RecordVisitCompletion(ctx,
		&trialv1.RecordVisitCompletionRequest{SubjectUuid: subjects[0], TrialId: trialID, SubjectVisitId: baseline.GetSubjectVisitId(),
			CompletedAt: timestamppb.New(at(t, "2025-03-10T05:00:00Z")), SourceReferences: []string{"epro:response/" + uuid.NewString()},
			IdempotencyKey: key()}))
	changed := must[*trialv1.ListWorklistResponse](t, "changed")(api.ListWorklist(ctx,
		&trialv1.ListWorklistRequest{TrialId: trialID, UpdatedAfter: last}))
	if len(changed.GetVisits()) != 1 || changed.GetVisits()[0].GetSubjectVisitId() != baseline.GetSubjectVisitId() ||
		changed.GetVisits()[0].GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED {
		t.Errorf("changed after the cursor: %v, want the one completed baseline", changed.GetVisits())
	}
}

// Window edges through the API, on the service's clock: a New York window
// across the spring-forward change and study days -14, 1 and 365 in Shanghai.
func TestWindowEdges(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	api := h.api(t, admin())
	phq9 := byURL("http://loinc.org/q/44249-1")
	trialID, shanghai, newYork := recruitingTrial(t, ctx, api, []*trialv1.Visit{
		{Code: "SCREENING", Name: "Screening", StudyDay: -14, WindowBeforeDays: 0, WindowAfterDays: 3, Questionnaires: phq9},
		{Code: "BASELINE", Name: "Baseline", StudyDay: 1, WindowBeforeDays: 0, WindowAfterDays: 3, Questionnaires: phq9},
		{Code: "Y1", Name: "Year 1", StudyDay: 365, WindowBeforeDays: 7, WindowAfterDays: 7, Questionnaires: phq9},
	})
	ny, sh := uuid.NewString(), uuid.NewString()
	h.patients.set(ny, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	h.patients.set(sh, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	h.clock.set(at(t, "2025-03-08T17:00:00Z")) // noon in New York, 01:00 on 03-09 in Shanghai
	must[*trialv1.EnrollSubjectResponse](t, "enroll NY")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
		SiteId: newYork, SubjectUuid: ny, EnrollmentDate: "2025-03-08", IdempotencyKey: key()}))
	must[*trialv1.EnrollSubjectResponse](t, "enroll SH")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
		SiteId: shanghai, SubjectUuid: sh, EnrollmentDate: "2025-03-01", IdempotencyKey: key()}))

	baselineOf := func(subject, code string) *trialv1.SubjectVisit {
		plan := must[*trialv1.GetSubjectVisitPlanResponse](t, "plan")(api.GetSubjectVisitPlan(ctx,
			&trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: subject}))
		return visitByCode(t, plan.GetVisits(), code)
	}
	// New York: 2025-03-08 .. 03-11, 71 hours because of spring-forward on 03-09.
	opens, closes := at(t, "2025-03-08T05:00:00Z"), at(t, "2025-03-12T04:00:00Z")
	v := baselineOf(ny, "BASELINE")
	if !v.GetWindowOpensAt().AsTime().Equal(opens) || !v.GetWindowClosesAt().AsTime().Equal(closes) {
		t.Fatalf("New York baseline window [%s, %s), want [%s, %s)", v.GetWindowOpensAt().AsTime(), v.GetWindowClosesAt().AsTime(), opens, closes)
	}
	for _, c := range []struct {
		now  time.Time
		want trialv1.SubjectVisitStatus
	}{
		{opens.Add(-time.Minute), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING}, // not open yet
		{opens, trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING},
		{closes.Add(-time.Minute), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING}, // last minute
		{closes, trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED},
	} {
		h.clock.set(c.now)
		if got := baselineOf(ny, "BASELINE").GetStatus(); got != c.want {
			t.Errorf("at %s: %s, want %s", c.now, got, c.want)
		}
	}
	epro := h.api(t, platformtest.Service("epro"))
	complete := func(when time.Time) error {
		_, err := epro.RecordVisitCompletion(ctx, &trialv1.RecordVisitCompletionRequest{SubjectUuid: ny, TrialId: trialID,
			SubjectVisitId: v.GetSubjectVisitId(), CompletedAt: timestamppb.New(when),
			SourceReferences: []string{"epro:response/" + uuid.NewString()}, IdempotencyKey: key()})
		return err
	}
	wantCode(t, "completed a minute before the window", complete(opens.Add(-time.Minute)), connect.CodeFailedPrecondition)
	wantCode(t, "completed at the close", complete(closes), connect.CodeFailedPrecondition)
	// Answered in the last minute, recorded after the close (an outbox delay):
	// the answer's time decides.
	if err := complete(closes.Add(-time.Minute)); err != nil {
		t.Fatalf("completion in the last minute: %v", err)
	}
	if got := baselineOf(ny, "BASELINE").GetStatus(); got != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED {
		t.Errorf("after a last-minute completion: %s", got)
	}

	// Shanghai, enrolled 2025-03-01: day -14, 1 and 365.
	for code, want := range map[string][3]string{
		"SCREENING": {"2025-02-15", "2025-02-14T16:00:00Z", "2025-02-18T16:00:00Z"},
		"BASELINE":  {"2025-03-01", "2025-02-28T16:00:00Z", "2025-03-04T16:00:00Z"},
		"Y1":        {"2026-02-28", "2026-02-20T16:00:00Z", "2026-03-07T16:00:00Z"},
	} {
		v := baselineOf(sh, code)
		if v.GetPlannedDate() != want[0] || !v.GetWindowOpensAt().AsTime().Equal(at(t, want[1])) || !v.GetWindowClosesAt().AsTime().Equal(at(t, want[2])) {
			t.Errorf("Shanghai %s: %s [%s, %s), want %v", code, v.GetPlannedDate(), v.GetWindowOpensAt().AsTime(), v.GetWindowClosesAt().AsTime(), want)
		}
	}
}
