package patient

import (
	"context"
	"errors"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
)

// ListAuditEvents maps the kit's entries to the contract.
func (s *Service) ListAuditEvents(ctx context.Context, req *patientv1.ListAuditEventsRequest) (*patientv1.ListAuditEventsResponse, error) {
	f := filterOf(req.GetActorId(), req.GetSubjectUuid(), req.GetActions(), req.GetRecordType(), req.GetRecordId(), req.GetOccurredFrom(), req.GetOccurredUntil())
	f.NewestFirst = req.GetOrder() == patientv1.AuditEventOrder_AUDIT_EVENT_ORDER_NEWEST_FIRST
	entries, next, err := s.audit.List(ctx, s.db, f, int(req.GetPageSize()), req.GetPageToken())
	if errors.Is(err, audit.ErrInvalidPageToken) {
		return nil, errorf(connect.CodeInvalidArgument, "page_token: not a token of this listing")
	} else if err != nil {
		return nil, errorf(connect.CodeInternal, "read the audit trail")
	}
	res := &patientv1.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range entries {
		res.Events = append(res.Events, eventOf(e))
	}
	return res, nil
}

func actionName(a patientv1.AuditAction) string { return a.String()[len("AUDIT_ACTION_"):] }

func eventOf(e audit.Entry) *patientv1.AuditEvent {
	kind := map[audit.ActorKind]patientv1.AuditActorKind{
		audit.ActorUser: patientv1.AuditActorKind_AUDIT_ACTOR_KIND_USER, audit.ActorService: patientv1.AuditActorKind_AUDIT_ACTOR_KIND_SERVICE,
		audit.ActorAnonymous: patientv1.AuditActorKind_AUDIT_ACTOR_KIND_ANONYMOUS,
	}[e.Actor.Kind]
	return &patientv1.AuditEvent{
		Sequence: e.Sequence, AuditEventId: e.ID, OccurredAt: timestamppb.New(e.OccurredAt),
		Actor:      &patientv1.AuditActor{Id: e.Actor.ID, Role: authzv1.Role(authzv1.Role_value[e.Actor.Role]), Kind: kind},
		Action:     patientv1.AuditAction(patientv1.AuditAction_value["AUDIT_ACTION_"+e.Action]),
		RecordType: patientv1.AuditRecordType(patientv1.AuditRecordType_value["AUDIT_RECORD_TYPE_"+e.RecordType]),
		RecordId:   e.RecordID, SubjectUuid: e.SubjectUUID, Field: e.Field, OldValue: e.OldValue, NewValue: e.NewValue,
		ValuesRedacted: e.ValuesRedacted, Reason: e.Reason, TrialId: e.TrialID, SiteId: e.SiteID,
		Client:    &patientv1.AuditClient{Address: e.Client.Address, UserAgent: e.Client.UserAgent, AppVersion: e.Client.AppVersion},
		Procedure: e.Procedure, TraceId: e.TraceID, Hash: e.Hash, PreviousHash: e.PreviousHash, HashVersion: int32(e.HashVersion),
	}
}

// VerifyAuditTrail recomputes the chain and names the first broken link.
func (s *Service) VerifyAuditTrail(ctx context.Context, req *patientv1.VerifyAuditTrailRequest) (*patientv1.VerifyAuditTrailResponse, error) {
	rep, err := s.audit.Verify(ctx, s.db, audit.Range{From: req.GetFromSequence(), To: req.GetToSequence()})
	if errors.Is(err, audit.ErrOutOfRange) {
		return nil, errorf(connect.CodeOutOfRange, "from_sequence: beyond the newest event")
	} else if err != nil {
		return nil, errorf(connect.CodeInternal, "verify the audit trail")
	}
	res := &patientv1.VerifyAuditTrailResponse{Intact: rep.Intact, EventsChecked: rep.Checked, FirstSequence: rep.FirstSequence,
		LastSequence: rep.LastSequence, FirstBrokenSequence: rep.FirstBroken, BreakDetail: rep.Detail, HeadHash: rep.HeadHash,
		VerifiedAt: timestamppb.New(rep.VerifiedAt)}
	switch rep.Kind {
	case audit.BreakHashMismatch:
		res.BreakReason = patientv1.AuditChainBreak_AUDIT_CHAIN_BREAK_HASH_MISMATCH
	case audit.BreakPreviousHashMismatch:
		res.BreakReason = patientv1.AuditChainBreak_AUDIT_CHAIN_BREAK_PREVIOUS_HASH_MISMATCH
	case audit.BreakSequenceGap:
		res.BreakReason = patientv1.AuditChainBreak_AUDIT_CHAIN_BREAK_SEQUENCE_GAP
	}
	return res, nil
}
