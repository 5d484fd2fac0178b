package trial_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// Completions racing with different keys (two devices, two deliveries) are
// one completion: every caller gets the winner's, and the trail has one event.
func TestConcurrentCompletionsAreOne(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	api := h.api(t, admin())
	trialID, shanghai, _ := recruitingTrial(t, ctx, api, schedule())
	h.clock.set(at(t, "2025-03-10T04:00:00Z"))
	subject := uuid.NewString()
	h.patients.set(subject, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
	res := must[*trialv1.EnrollSubjectResponse](t, "enroll")(api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{TrialId: trialID,
		SiteId: shanghai, SubjectUuid: subject, EnrollmentDate: "2025-03-10", IdempotencyKey: key()}))
	baseline := visitByCode(t, res.GetVisits(), "BASELINE")
	epro := h.api(t, platformtest.Service("epro"))
	const n = 8
	got := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := epro.RecordVisitCompletion(ctx, &trialv1.RecordVisitCompletionRequest{SubjectUuid: subject, TrialId: trialID,
				SubjectVisitId: baseline.GetSubjectVisitId(), CompletedAt: timestamppb.New(at(t, "2025-03-10T05:00:00Z").Add(time.Duration(i) * time.Minute)),
				SourceReferences: []string{"epro:response/" + uuid.NewString()}, IdempotencyKey: key()})
			errs[i] = err
			got[i] = r.GetVisit().GetCompletedAt().AsTime()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("completion %d: %v", i, errs[i])
		}
		if !got[i].Equal(got[0]) {
			t.Errorf("completion %d answered %s, completion 0 %s: two completions", i, got[i], got[0])
		}
	}
	ev := must[*trialv1.ListAuditEventsResponse](t, "audit")(api.ListAuditEvents(ctx, &trialv1.ListAuditEventsRequest{
		Actions: []trialv1.AuditAction{trialv1.AuditAction_AUDIT_ACTION_VISIT_COMPLETED}}))
	if len(ev.GetEvents()) != 1 {
		t.Errorf("%d VISIT_COMPLETED events, want 1", len(ev.GetEvents()))
	}
}
