package trial_test

import (
	"context"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
)

// A trial's late-submission grace period: 24 hours unless set at creation,
// changed with UpdateTrial (on the audit trail with its reason), bounded.
func TestLateSubmissionGrace(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	api := h.api(t, admin())
	create := func(grace *int32) *trialv1.Trial {
		return must[*trialv1.CreateTrialResponse](t, "CreateTrial")(api.CreateTrial(ctx, &trialv1.CreateTrialRequest{
			ProtocolCode: "TH-" + uuid.NewString()[:8], Title: "A test trial", Phase: trialv1.TrialPhase_TRIAL_PHASE_3,
			Sponsor: "Test Sponsor", LateSubmissionGraceHours: grace, IdempotencyKey: key()})).GetTrial()
	}
	if got := create(nil).GetLateSubmissionGraceHours(); got != 24 {
		t.Errorf("default grace %d h, want 24", got)
	}
	none := create(proto.Int32(0))
	if got := none.GetLateSubmissionGraceHours(); got != 0 {
		t.Errorf("grace set to 0 is %d h", got)
	}
	_, err := api.CreateTrial(ctx, &trialv1.CreateTrialRequest{ProtocolCode: "TH-" + uuid.NewString()[:8], Title: "A test trial",
		Phase: trialv1.TrialPhase_TRIAL_PHASE_3, Sponsor: "Test Sponsor", LateSubmissionGraceHours: proto.Int32(169), IdempotencyKey: key()})
	wantCode(t, "a grace over a week", err, connect.CodeInvalidArgument)

	updated := must[*trialv1.UpdateTrialResponse](t, "UpdateTrial")(api.UpdateTrial(ctx, &trialv1.UpdateTrialRequest{
		TrialId: none.GetTrialId(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"late_submission_grace_hours"}},
		LateSubmissionGraceHours: 48, Reason: "Participants travel with poor coverage", IdempotencyKey: key()})).GetTrial()
	if updated.GetLateSubmissionGraceHours() != 48 || updated.GetTitle() != "A test trial" {
		t.Fatalf("after UpdateTrial: %v", updated)
	}
	got := must[*trialv1.GetTrialResponse](t, "GetTrial")(api.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: none.GetTrialId()}))
	if got.GetTrial().GetLateSubmissionGraceHours() != 48 {
		t.Errorf("GetTrial grace %d h, want 48", got.GetTrial().GetLateSubmissionGraceHours())
	}
	ev := must[*trialv1.ListAuditEventsResponse](t, "ListAuditEvents")(api.ListAuditEvents(ctx, &trialv1.ListAuditEventsRequest{
		Actions: []trialv1.AuditAction{trialv1.AuditAction_AUDIT_ACTION_TRIAL_UPDATED}}))
	var events []*trialv1.AuditEvent
	for _, e := range ev.GetEvents() {
		if e.GetTrialId() == none.GetTrialId() {
			events = append(events, e)
		}
	}
	if n := len(events); n != 1 {
		t.Fatalf("%d TRIAL_UPDATED events, want 1", n)
	}
	if e := events[0]; e.GetField() != "late_submission_grace_hours" || e.GetOldValue() != "0" || e.GetNewValue() != "48" ||
		e.GetReason() != "Participants travel with poor coverage" {
		t.Errorf("audit event %v", e)
	}
}
