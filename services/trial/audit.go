package trial

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
)

// ListAuditEvents reads this service's audit trail for administrators.
func (s *Service) ListAuditEvents(ctx context.Context, req *trialv1.ListAuditEventsRequest) (*trialv1.ListAuditEventsResponse, error) {
	f := audit.Filter{
		ActorID: req.GetActorId(), SubjectUUID: req.GetSubjectUuid(), RecordID: req.GetRecordId(),
		NewestFirst: req.GetOrder() == trialv1.AuditEventOrder_AUDIT_EVENT_ORDER_NEWEST_FIRST,
	}
	if rt := req.GetRecordType(); rt != trialv1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED {
		f.RecordType = strings.TrimPrefix(rt.String(), "AUDIT_RECORD_TYPE_")
	}
	for _, a := range req.GetActions() {
		f.Actions = append(f.Actions, strings.TrimPrefix(a.String(), "AUDIT_ACTION_"))
	}
	if req.GetOccurredFrom() != nil {
		f.From = req.GetOccurredFrom().AsTime()
	}
	if req.GetOccurredUntil() != nil {
		f.Until = req.GetOccurredUntil().AsTime()
	}
	entries, next, err := s.audit.List(ctx, s.db, f, pageSize(req.GetPageSize(), audit.DefaultPageSize), req.GetPageToken())
	if errors.Is(err, audit.ErrInvalidPageToken) {
		return nil, invalid("page_token", "not a token of this query")
	}
	if err != nil {
		return nil, db.ConnectError(err, "audit trail")
	}
	res := &trialv1.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range entries {
		res.Events = append(res.Events, &trialv1.AuditEvent{
			Sequence: e.Sequence, AuditEventId: e.ID, OccurredAt: timestamppb.New(e.OccurredAt),
			Actor:      &trialv1.AuditActor{Id: e.Actor.ID, Role: authzv1.Role(authzv1.Role_value[e.Actor.Role]), Kind: string(e.Actor.Kind)},
			Action:     trialv1.AuditAction(trialv1.AuditAction_value["AUDIT_ACTION_"+e.Action]),
			RecordType: trialv1.AuditRecordType(trialv1.AuditRecordType_value["AUDIT_RECORD_TYPE_"+e.RecordType]),
			RecordId:   e.RecordID, SubjectUuid: e.SubjectUUID, Field: e.Field, OldValue: e.OldValue, NewValue: e.NewValue,
			Reason: e.Reason, TrialId: e.TrialID, SiteId: e.SiteID, Procedure: e.Procedure, TraceId: e.TraceID,
			Hash: e.Hash, PreviousHash: e.PreviousHash, HashVersion: int32(e.HashVersion),
		})
	}
	return res, nil
}

// VerifyAuditTrail recomputes this service's hash chain.
func (s *Service) VerifyAuditTrail(ctx context.Context, req *trialv1.VerifyAuditTrailRequest) (*trialv1.VerifyAuditTrailResponse, error) {
	r, err := s.audit.Verify(ctx, s.db, audit.Range{From: req.GetFromSequence(), To: req.GetToSequence()})
	if errors.Is(err, audit.ErrOutOfRange) {
		return nil, connect.NewError(connect.CodeOutOfRange, "from_sequence: beyond the newest event")
	}
	if err != nil {
		return nil, db.ConnectError(err, "audit trail")
	}
	return &trialv1.VerifyAuditTrailResponse{
		Intact: r.Intact, EventsChecked: r.Checked, FirstSequence: r.FirstSequence, LastSequence: r.LastSequence,
		FirstBrokenSequence: r.FirstBroken, BreakReason: trialv1.AuditChainBreak(trialv1.AuditChainBreak_value["AUDIT_CHAIN_BREAK_"+string(r.Kind)]),
		BreakDetail: r.Detail, HeadHash: r.HeadHash, VerifiedAt: timestamppb.New(r.VerifiedAt),
	}, nil
}
