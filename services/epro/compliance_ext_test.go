package epro_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

func instant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func counts(c *eprov1.ComplianceCounts) [4]int32 {
	return [4]int32{c.GetExpected(), c.GetCompleted(), c.GetMissed(), c.GetPending()}
}

// Days are counted in the site's zone: as of 2026-03-08 in New York (the day
// clocks spring forward, so the day ends at 04:00 UTC, not 05:00), a window
// closing at 23:30 local is missed, one closing at 00:30 local the next day is
// still pending, and one opening at 23:50 local is expected (a UTC count would
// not have opened it yet), one opening ten minutes after midnight is not.
func TestComplianceReportInSiteZone(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	trial := f.trial.trialID
	phq9 := []*trialv1.QuestionnaireRef{{Ref: &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: f.phq9.GetQuestionnaireId()}}}
	newYork := func(opens, closes string, status trialv1.SubjectVisitStatus) string {
		return f.trial.put(&trialv1.SubjectVisit{SubjectUuid: uuid.NewString(), VisitCode: "W04", VisitName: "Week 4",
			WindowOpensAt: timestamppb.New(instant(t, opens)), WindowClosesAt: timestamppb.New(instant(t, closes)), Status: status,
			SiteId: siteB, SiteTimeZone: "America/New_York", SiteCode: "US-001", EnrollmentDate: "2026-02-01", Questionnaires: phq9})
	}
	pending := trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING
	ids := []string{
		newYork("2026-03-05T05:00:00Z", "2026-03-09T03:30:00Z", pending), // closes 23:30 EDT on the 8th: missed
		newYork("2026-03-05T05:00:00Z", "2026-03-09T04:30:00Z", pending), // closes 00:30 EDT on the 9th: pending
		newYork("2026-03-09T03:50:00Z", "2026-03-12T04:00:00Z", pending), // opens 23:50 EDT on the 8th: pending
		newYork("2026-03-09T04:10:00Z", "2026-03-12T04:00:00Z", pending), // opens 00:10 EDT on the 9th: not due
		newYork("2026-03-01T05:00:00Z", "2026-03-04T05:00:00Z", trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED),
	}
	// Berlin, counted now: answered, open, closed and future tasks of the fixture's patient.
	now := time.Now().UTC()
	berlin := func(opens, closes time.Time) string {
		return f.trial.put(&trialv1.SubjectVisit{SubjectUuid: f.subject, VisitCode: "W01", VisitName: "Week 1",
			WindowOpensAt: timestamppb.New(opens), WindowClosesAt: timestamppb.New(closes), Status: pending, SiteId: siteID,
			SiteTimeZone: "Europe/Berlin", SiteCode: "DE-001", EnrollmentDate: now.AddDate(0, 0, -7).Format(time.DateOnly), Questionnaires: phq9})
	}
	answered := berlin(now.Add(-time.Hour), now.Add(time.Hour))
	ids = append(ids, answered, berlin(now.Add(-time.Hour), now.Add(time.Hour)), berlin(now.Add(-72*time.Hour), now.Add(-48*time.Hour)),
		berlin(now.Add(48*time.Hour), now.Add(72*time.Hour)))
	eventually(t, "the visits copied", func() bool {
		n := 0
		for _, id := range ids {
			n += count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id = $1`, id)
		}
		return n == len(ids)
	})
	if _, err := f.submit(ctx, "compliance-answer-01", answered, now, phq9Answers(t, total(3))); err != nil {
		t.Fatal(err)
	}
	analyst := staff(t, f, auth.Caller{Subject: "an-1", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{trial}})

	ny, err := analyst.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, SiteId: siteB, AsOfDate: "2026-03-08"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ny.GetRows()) != 1 || ny.GetAsOfDate() != "2026-03-08" {
		t.Fatalf("New York report %v", ny)
	}
	row := ny.GetRows()[0]
	if counts(row.GetCounts()) != [4]int32{3, 0, 1, 2} || row.GetCounts().GetComplianceRatio() != 0 || row.GetCounts().ComplianceRatio == nil ||
		row.GetTimeZone() != "America/New_York" || row.GetVisitCode() != "W04" || row.GetVisitName() != "Week 4" ||
		row.GetQuestionnaireUrl() != f.phq9.GetUrl() || row.GetQuestionnaireTitle() != f.phq9.GetTitle() || row.GetSubjectUuid() != "" {
		t.Fatalf("New York row %v, want expected 3, missed 1, pending 2", row)
	}
	bySubject, err := analyst.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, SiteId: siteB, AsOfDate: "2026-03-08", BySubject: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(bySubject.GetRows()) != 3 || counts(bySubject.GetTotal()) != [4]int32{3, 0, 1, 2} {
		t.Fatalf("by subject %v", bySubject)
	}
	for _, r := range bySubject.GetRows() {
		if r.GetSubjectUuid() == "" || r.GetCounts().GetExpected() != 1 {
			t.Fatalf("subject row %v", r)
		}
	}

	de, err := analyst.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, SiteId: siteID})
	if err != nil {
		t.Fatal(err)
	}
	if len(de.GetRows()) != 1 || counts(de.GetRows()[0].GetCounts()) != [4]int32{3, 1, 1, 1} || de.GetRows()[0].GetCounts().GetComplianceRatio() != 0.5 ||
		de.GetAsOfDate() != now.Format(time.DateOnly) {
		t.Fatalf("Berlin report now %v, want expected 3: completed, missed and pending 1 each", de)
	}

	// Pages: one row each, the total over all of them on every page.
	req := &eprov1.GetComplianceReportRequest{TrialId: trial, PageSize: 1}
	var rows []*eprov1.ComplianceRow
	for {
		page, err := analyst.GetComplianceReport(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page.GetRows()...)
		if counts(page.GetTotal()) != [4]int32{7, 1, 5, 1} {
			t.Fatalf("total on a page %v, want New York's 4 tasks missed by now beside Berlin's 3", page.GetTotal())
		}
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
		_, err = analyst.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, BySubject: true, PageToken: req.PageToken})
		wantCode(t, err, connect.CodeInvalidArgument, "page_token")
	}
	if len(rows) != 2 || rows[0].GetSiteId() > rows[1].GetSiteId() {
		t.Fatalf("paged rows %v", rows)
	}

	_, err = analyst.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, AsOfDate: "2026-02-30"})
	wantCode(t, err, connect.CodeInvalidArgument, "as_of_date")
	other := staff(t, f, auth.Caller{Subject: "an-2", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{uuid.NewString()}})
	_, err = other.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial})
	wantCode(t, err, connect.CodePermissionDenied, "trial_id")
	inv := staff(t, f, auth.Caller{Subject: "inv-a", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{siteID}, Trials: []string{trial}})
	_, err = inv.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial, SiteId: siteB})
	wantCode(t, err, connect.CodePermissionDenied, "site_id")
	mine, err := inv.GetComplianceReport(ctx, &eprov1.GetComplianceReportRequest{TrialId: trial})
	if err != nil || len(mine.GetRows()) != 1 || mine.GetRows()[0].GetSiteId() != siteID {
		t.Fatalf("investigator's own sites: %v %v", mine, err)
	}
}
