package epro_test

import (
	"context"
	"testing"
	"time"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// A response marked entered in error withdraws the visit completion it made,
// through the outbox: once when the completion was delivered first, and also
// when the trial service was down for both (the completion is then either never
// recorded or withdrawn after it: the visit ends up not completed either way).
func TestEnteredInErrorWithdrawsCompletion(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	inv := eprov1connect.NewEproServiceClient(f.env.Client(t, platformtest.Investigator(siteID)))
	voidIt := func(key, responseID string) {
		t.Helper()
		res, err := inv.AmendResponse(ctx, &eprov1.AmendResponseRequest{IdempotencyKey: key, ResponseId: responseID, ExpectedRevision: 1,
			Action: eprov1.AmendAction_AMEND_ACTION_MARK_ENTERED_IN_ERROR, Reason: "Answered on the wrong subject's device"})
		if err != nil || res.GetReceipt().GetStatus() != eprov1.ResponseStatus_RESPONSE_STATUS_ENTERED_IN_ERROR {
			t.Fatalf("entered in error: %v %v", res, err)
		}
	}

	delivered := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	first, err := f.submit(ctx, "withdraw-delivered-01", delivered, now, phq9Answers(t, total(5)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the completion delivered", func() bool { done, _ := f.trial.visitState(delivered); return done })
	voidIt("withdraw-delivered-eie", first.GetReceipt().GetResponseId())
	eventually(t, "the completion withdrawn", func() bool { done, n := f.trial.visitState(delivered); return !done && n == 1 })

	// Trial service down (after the visit was copied): the completion and its
	// withdrawal are both queued.
	queued := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	f.trial.down.Store(true)
	second, err := f.submit(ctx, "withdraw-queued-0001", queued, now, phq9Answers(t, total(5)))
	if err != nil {
		t.Fatal(err)
	}
	voidIt("withdraw-queued-eie01", second.GetReceipt().GetResponseId())
	f.trial.down.Store(false)
	eventually(t, "both jobs finished", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM river_job WHERE kind IN ('epro.record_completion', 'epro.withdraw_completion') AND state <> 'completed'`) == 0
	})
	if done, _ := f.trial.visitState(queued); done {
		t.Fatal("the voided response's visit is completed in the trial service")
	}
	if done, n := f.trial.visitState(delivered); done || n != 1 {
		t.Fatalf("first visit: completed %v, %d withdrawals, want 1", done, n)
	}
}
