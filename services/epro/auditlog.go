package epro

import (
	"context"
	"errors"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
)

// ListAuditEvents maps the kit's audit entries to the contract.
func (s *Service) ListAuditEvents(ctx context.Context, req *eprov1.ListAuditEventsRequest) (*eprov1.ListAuditEventsResponse, error) {
	f := audit.Filter{ActorID: req.GetActorId(), SubjectUUID: req.GetSubjectUuid(), RecordID: req.GetRecordId(),
		NewestFirst: req.GetOrder() == eprov1.AuditEventOrder_AUDIT_EVENT_ORDER_NEWEST_FIRST}
	for _, a := range req.GetActions() {
		f.Actions = append(f.Actions, trimEnum(a.String(), "AUDIT_ACTION_"))
	}
	if req.GetRecordType() != eprov1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED {
		f.RecordType = trimEnum(req.GetRecordType().String(), "AUDIT_RECORD_TYPE_")
	}
	if req.GetOccurredFrom() != nil {
		f.From = req.GetOccurredFrom().AsTime()
	}
	if req.GetOccurredUntil() != nil {
		f.Until = req.GetOccurredUntil().AsTime()
	}
	entries, next, err := s.audit.List(ctx, s.db, f, int(req.GetPageSize()), req.GetPageToken())
	if errors.Is(err, audit.ErrInvalidPageToken) {
		return nil, connect.NewError(connect.CodeInvalidArgument, "page_token: not a token of this listing")
	} else if err != nil {
		return nil, connect.NewError(connect.CodeInternal, "read the audit trail").WithCause(err)
	}
	res := &eprov1.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range entries {
		res.Events = append(res.Events, &eprov1.AuditEvent{
			Sequence: e.Sequence, AuditEventId: e.ID, OccurredAt: timestamppb.New(e.OccurredAt),
			Actor:      &eprov1.AuditActor{Id: e.Actor.ID, Role: authzv1.Role(authzv1.Role_value[e.Actor.Role]), Kind: string(e.Actor.Kind)},
			Action:     eprov1.AuditAction(eprov1.AuditAction_value["AUDIT_ACTION_"+e.Action]),
			RecordType: eprov1.AuditRecordType(eprov1.AuditRecordType_value["AUDIT_RECORD_TYPE_"+e.RecordType]),
			RecordId:   e.RecordID, SubjectUuid: e.SubjectUUID, Field: e.Field, OldValue: e.OldValue, NewValue: e.NewValue,
			Reason: e.Reason, TrialId: e.TrialID, SiteId: e.SiteID, Procedure: e.Procedure, TraceId: e.TraceID,
			Hash: e.Hash, PreviousHash: e.PreviousHash, HashVersion: int32(e.HashVersion),
		})
	}
	return res, nil
}

// VerifyAuditTrail recomputes the chain and names the first broken link.
func (s *Service) VerifyAuditTrail(ctx context.Context, req *eprov1.VerifyAuditTrailRequest) (*eprov1.VerifyAuditTrailResponse, error) {
	rep, err := s.audit.Verify(ctx, s.db, audit.Range{From: req.GetFromSequence(), To: req.GetToSequence()})
	if errors.Is(err, audit.ErrOutOfRange) {
		return nil, connect.NewError(connect.CodeOutOfRange, "from_sequence: beyond the newest event")
	} else if err != nil {
		return nil, connect.NewError(connect.CodeInternal, "verify the audit trail").WithCause(err)
	}
	res := &eprov1.VerifyAuditTrailResponse{Intact: rep.Intact, EventsChecked: rep.Checked, FirstSequence: rep.FirstSequence,
		LastSequence: rep.LastSequence, FirstBrokenSequence: rep.FirstBroken, BreakDetail: rep.Detail, HeadHash: rep.HeadHash,
		VerifiedAt: timestamppb.New(rep.VerifiedAt)}
	switch rep.Kind {
	case audit.BreakHashMismatch:
		res.BreakReason = eprov1.AuditChainBreak_AUDIT_CHAIN_BREAK_HASH_MISMATCH
	case audit.BreakPreviousHashMismatch:
		res.BreakReason = eprov1.AuditChainBreak_AUDIT_CHAIN_BREAK_PREVIOUS_HASH_MISMATCH
	case audit.BreakSequenceGap:
		res.BreakReason = eprov1.AuditChainBreak_AUDIT_CHAIN_BREAK_SEQUENCE_GAP
	}
	return res, nil
}
