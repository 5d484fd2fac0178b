package trial_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
)

// BenchmarkEnrollSubject: one enrollment per iteration (the patient check over
// the network, the enrollment, three planned visits with their WindowClosed
// jobs, the audit event and the idempotency record in one transaction).
func BenchmarkEnrollSubject(b *testing.B) {
	ctx := context.Background()
	h := start(b)
	api := h.api(b, admin())
	trialID, shanghai, _ := recruitingTrial(b, ctx, api, schedule())
	for b.Loop() {
		s := uuid.NewString()
		h.patients.set(s, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
		if _, err := api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID, SiteId: shanghai, SubjectUuid: s,
			EnrollmentDate: "2025-03-10", IdempotencyKey: key()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetSubjectVisitPlan: one plan read per iteration, windows
// recomputed from local dates and zone.
func BenchmarkGetSubjectVisitPlan(b *testing.B) {
	ctx := context.Background()
	h := start(b)
	api := h.api(b, admin())
	trialID, shanghai, _ := recruitingTrial(b, ctx, api, schedule())
	s := uuid.NewString()
	h.patients.set(s, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	must[*trialv1.EnrollSubjectResponse](b, "enroll")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
		SiteId: shanghai, SubjectUuid: s, EnrollmentDate: "2025-03-10", IdempotencyKey: key()}))
	req := &trialv1.GetSubjectVisitPlanRequest{TrialId: trialID, SubjectUuid: s}
	for b.Loop() {
		if _, err := api.GetSubjectVisitPlan(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
