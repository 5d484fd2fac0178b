package trial_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/trial"
)

// Every refusal the issue lists, with its code and the field it names.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	api := h.api(t, admin())
	trialID, shanghai, newYork := recruitingTrial(t, ctx, api, schedule())
	active, suspended := uuid.NewString(), uuid.NewString()
	h.patients.set(active, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	h.patients.set(suspended, patientv1.AccountStatus_ACCOUNT_STATUS_SUSPENDED)
	closed, invited := uuid.NewString(), uuid.NewString()
	h.patients.set(closed, patientv1.AccountStatus_ACCOUNT_STATUS_CLOSED)
	h.patients.set(invited, patientv1.AccountStatus_ACCOUNT_STATUS_PENDING_ACTIVATION)
	enroll := func(c trialv1connectClient, subject, siteID, date string) error {
		_, err := c.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID, SiteId: siteID, SubjectUuid: subject,
			EnrollmentDate: date, IdempotencyKey: key()})
		return err
	}
	today := "2025-03-10"
	h.clock.set(at(t, "2025-03-10T12:00:00Z"))

	for _, tc := range []struct {
		name  string
		err   error
		code  connect.Code
		field string
	}{
		{"investigator at another site", enroll(h.api(t, investigator([]string{newYork}, []string{trialID})), active, shanghai, today),
			connect.CodePermissionDenied, "site_id"},
		{"investigator of the site without the trial in scope", enroll(h.api(t, investigator([]string{shanghai}, nil)), active, shanghai, today),
			connect.CodePermissionDenied, "site_id"},
		{"wrong role: analyst enrolls", enroll(h.api(t, analyst(trialID)), active, shanghai, today), connect.CodePermissionDenied, ""},
		{"wrong role: patient enrolls", enroll(h.api(t, patient(active)), active, shanghai, today), connect.CodePermissionDenied, ""},
		{"unknown subject", enroll(api, uuid.NewString(), shanghai, today), connect.CodeFailedPrecondition, "subject_uuid"},
		{"suspended subject", enroll(api, suspended, shanghai, today), connect.CodeFailedPrecondition, "subject_uuid"},
		{"closed account", enroll(api, closed, shanghai, today), connect.CodeFailedPrecondition, "subject_uuid"},
		{"date that does not exist", enroll(api, active, shanghai, "2025-02-31"), connect.CodeInvalidArgument, "enrollment_date"},
		{"date more than 14 days ahead", enroll(api, active, shanghai, "2025-03-25"), connect.CodeInvalidArgument, "enrollment_date"},
		{"site of another trial", enroll(api, active, uuid.NewString(), today), connect.CodeNotFound, "site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if connect.CodeOf(tc.err) != tc.code || !strings.Contains(tc.err.Error(), tc.field) {
				t.Errorf("%v, want %s naming %q", tc.err, tc.code, tc.field)
			}
		})
	}

	if err := enroll(api, active, shanghai, today); err != nil {
		t.Fatal(err)
	}
	// A site invites a participant and enrolls them before they activate.
	if err := enroll(api, invited, shanghai, today); err != nil {
		t.Fatalf("enrolling an invited subject not yet activated: %v", err)
	}
	t.Run("duplicate enrollment", func(t *testing.T) {
		err := enroll(api, active, newYork, today)
		if connect.CodeOf(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), "subject_uuid") {
			t.Errorf("%v, want already_exists naming subject_uuid", err)
		}
	})
	t.Run("enrollment 14 days ahead, withdrawn during screening", func(t *testing.T) {
		early := uuid.NewString()
		h.patients.set(early, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
		res, err := api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID, SiteId: shanghai, SubjectUuid: early,
			EnrollmentDate: "2025-03-24", IdempotencyKey: key()})
		if err != nil {
			t.Fatalf("enrollment 14 days ahead: %v", err)
		}
		if v := visitByCode(t, res.GetVisits(), "SCREENING"); v.GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING ||
			v.GetPlannedDate() != "2025-03-17" {
			t.Errorf("screening of a subject enrolled ahead: %s on %s, want PENDING on 2025-03-17", v.GetStatus(), v.GetPlannedDate())
		}
		w, err := api.WithdrawSubject(ctx, &trialv1.WithdrawSubjectRequest{EnrollmentId: res.GetEnrollment().GetEnrollmentId(),
			ReasonCode: trialv1.WithdrawalReason_WITHDRAWAL_REASON_OTHER, Reason: "Screen failure", WithdrawalDate: today, IdempotencyKey: key()})
		if err != nil || w.GetEnrollment().GetEndStudyDay() != -14 || w.GetCancelledVisitCount() != 3 {
			t.Errorf("withdrawal during screening: %v, end day %d, %d cancelled; want day -14, 3", err,
				w.GetEnrollment().GetEndStudyDay(), w.GetCancelledVisitCount())
		}
	})
	t.Run("patient reading another subject's plan", func(t *testing.T) {
		_, err := h.api(t, patient(uuid.NewString())).GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{SubjectUuid: active, TrialId: trialID})
		wantCode(t, "GetSubjectVisitPlan of another subject", err, connect.CodePermissionDenied)
	})
	t.Run("investigator of another site reading a plan", func(t *testing.T) {
		_, err := h.api(t, investigator([]string{newYork}, []string{trialID})).GetSubjectVisitPlan(ctx,
			&trialv1.GetSubjectVisitPlanRequest{SubjectUuid: active, TrialId: trialID})
		wantCode(t, "GetSubjectVisitPlan at another site", err, connect.CodeNotFound)
	})
	t.Run("investigator without the trial in scope", func(t *testing.T) {
		inv := h.api(t, investigator([]string{shanghai}, nil))
		_, err := inv.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: trialID})
		wantCode(t, "GetTrial", err, connect.CodeNotFound)
		_, err = inv.ListWorklist(ctx, &trialv1.ListWorklistRequest{TrialId: trialID})
		wantCode(t, "ListWorklist", err, connect.CodeNotFound)
		res, err := inv.ListEnrollments(ctx, &trialv1.ListEnrollmentsRequest{})
		if err != nil || len(res.GetEnrollments()) != 0 {
			t.Errorf("ListEnrollments without trial scope: %v, %d enrollments", err, len(res.GetEnrollments()))
		}
	})
	t.Run("investigator sees only their sites", func(t *testing.T) {
		got, err := h.api(t, investigator([]string{newYork}, []string{trialID})).GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: trialID})
		if err != nil || len(got.GetSites()) != 1 || got.GetSites()[0].GetSiteId() != newYork {
			t.Errorf("GetTrial of a New York investigator: %v, sites %v", err, got.GetSites())
		}
	})
	t.Run("trial not recruiting", func(t *testing.T) {
		must[*trialv1.UpdateTrialStatusResponse](t, "suspend")(api.UpdateTrialStatus(ctx, &trialv1.UpdateTrialStatusRequest{
			TrialId: trialID, Status: trialv1.TrialStatus_TRIAL_STATUS_SUSPENDED, Reason: "Safety review", IdempotencyKey: key()}))
		other := uuid.NewString()
		h.patients.set(other, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
		err := enroll(api, other, shanghai, today)
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "trial_id") {
			t.Errorf("%v, want failed_precondition naming trial_id", err)
		}
	})
	t.Run("transition not allowed", func(t *testing.T) {
		_, err := api.UpdateTrialStatus(ctx, &trialv1.UpdateTrialStatusRequest{TrialId: trialID,
			Status: trialv1.TrialStatus_TRIAL_STATUS_PLANNED, Reason: "Back to planning", IdempotencyKey: key()})
		wantCode(t, "SUSPENDED -> PLANNED", err, connect.CodeFailedPrecondition)
	})
	t.Run("time zone of a site with enrollments", func(t *testing.T) {
		_, err := api.UpdateSite(ctx, &trialv1.UpdateSiteRequest{SiteId: shanghai, UpdateMask: mask("time_zone"),
			TimeZone: "Asia/Tokyo", Reason: "Wrong zone", IdempotencyKey: key()})
		wantCode(t, "UpdateSite time_zone", err, connect.CodeFailedPrecondition)
		_, err = api.UpdateSite(ctx, &trialv1.UpdateSiteRequest{SiteId: newYork, UpdateMask: mask("time_zone"),
			TimeZone: "Mars/Olympus_Mons", Reason: "Wrong zone", IdempotencyKey: key()})
		wantCode(t, "UpdateSite to an unknown zone", err, connect.CodeInvalidArgument)
	})
	t.Run("country code that is not assigned", func(t *testing.T) {
		_, err := api.AddSite(ctx, &trialv1.AddSiteRequest{TrialId: trialID, SiteCode: "XX-001", Name: "Nowhere",
			CountryCode: "ZZ", TimeZone: "Europe/Berlin", IdempotencyKey: key()})
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "country_code") {
			t.Errorf("%v, want invalid_argument naming country_code", err)
		}
	})
	t.Run("closed site enrolls no one", func(t *testing.T) {
		must[*trialv1.UpdateTrialStatusResponse](t, "resume")(api.UpdateTrialStatus(ctx, &trialv1.UpdateTrialStatusRequest{
			TrialId: trialID, Status: trialv1.TrialStatus_TRIAL_STATUS_RECRUITING, Reason: "Review passed", IdempotencyKey: key()}))
		must[*trialv1.CloseSiteResponse](t, "CloseSite")(api.CloseSite(ctx, &trialv1.CloseSiteRequest{SiteId: newYork,
			Reason: "Target reached", IdempotencyKey: key()}))
		other := uuid.NewString()
		h.patients.set(other, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
		err := enroll(api, other, newYork, today)
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "site_id") {
			t.Errorf("%v, want failed_precondition naming site_id", err)
		}
	})
}

// With the patient service down, enrollment is UNAVAILABLE, never an answer.
func TestEnrollWithPatientServiceDown(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	var logs syncBuffer
	env := platformtest.Start(t, trial.Platform(), platformtest.WithDependency("patient", closed),
		platformtest.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	api := trialv1connectNew(env, t)
	trialID, shanghai, _ := recruitingTrial(t, ctx, api, schedule())
	_, err = api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID, SiteId: shanghai, SubjectUuid: uuid.NewString(),
		EnrollmentDate: "2025-03-10", IdempotencyKey: key()})
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "subject_uuid") {
		t.Fatalf("%v, want unavailable naming subject_uuid", err)
	}
	res, err := api.ListEnrollments(ctx, &trialv1.ListEnrollmentsRequest{TrialId: trialID})
	if err != nil || len(res.GetEnrollments()) != 0 {
		t.Fatalf("after a refused enrollment: %v, %d enrollments", err, len(res.GetEnrollments()))
	}
	// The rpc line says what the client got, at WARN (a dependency, not a fault).
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "rpc" ||
			rec["procedure"] != "/trialhub.trial.v1.TrialService/EnrollSubject" {
			continue
		}
		found = true
		t.Logf("EnrollSubject with the patient service down answered in %v ms", rec["duration_ms"])
		if rec["code"] != "unavailable" || rec["level"] != "WARN" {
			t.Errorf("EnrollSubject rpc line: %s", line)
		}
	}
	if !found {
		t.Errorf("no rpc line for EnrollSubject in:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
