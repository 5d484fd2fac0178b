package epro

import (
	"context"
	"strconv"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/epro/internal/deid"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// ReviewFreeText records a reviewer's decision on one free-text answer of a
// response revision (REVIEWED: shown with REVIEWED_ONLY; REDACTED: never shown
// in de-identified views). The text is never changed; a later decision
// replaces an earlier one, and both are on the audit trail with their reasons.
func (s *Service) ReviewFreeText(ctx context.Context, req *eprov1.ReviewFreeTextRequest) (*eprov1.ReviewFreeTextResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.ReviewFreeTextResponse, error) {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			revision := strconv.Itoa(int(req.GetRevision()))
			row, err := c.Response.Get(ctx, req.GetResponseId()+"/"+revision)
			if ent.IsNotFound(err) {
				return nil, connect.NewError(connect.CodeNotFound, "response_id: no such response revision")
			}
			if err != nil {
				return nil, err
			}
			if !caller.CanAccessTrial(row.TrialID) || !maySeeSite(caller, row.SiteID) {
				return nil, connect.NewError(connect.CodePermissionDenied, "response_id: the subject's site is not in your scope")
			}
			if ok, err := hasFreeText(ctx, c, row, req.GetLinkId()); err != nil {
				return nil, err
			} else if !ok {
				return nil, connect.NewError(connect.CodeInvalidArgument, "link_id: this revision has no free-text answer to that item")
			}
			decision := trimEnum(req.GetDecision().String(), "FREE_TEXT_DECISION_")
			id := req.GetResponseId() + "/" + revision + "/" + req.GetLinkId()
			now := s.now()
			old := ""
			existing, err := c.FreeTextReview.Get(ctx, id)
			switch {
			case ent.IsNotFound(err):
				err = c.FreeTextReview.Create().SetID(id).SetResponseID(row.ResponseID).SetRevision(row.Revision).
					SetLinkID(req.GetLinkId()).SetDecision(decision).SetReviewerRole(caller.Role.String()).SetReviewedAt(now).Exec(ctx)
			case err == nil:
				old = existing.Decision
				err = existing.Update().SetDecision(decision).SetReviewerRole(caller.Role.String()).SetReviewedAt(now).Exec(ctx)
			}
			if err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{
				Action: "FREE_TEXT_REVIEWED", RecordType: "RESPONSE", RecordID: row.ResponseID, SubjectUUID: row.SubjectUUID,
				Field: "answers." + req.GetLinkId(), OldValue: old, NewValue: decision,
				Reason: req.GetReason() + " (revision " + revision + ")", TrialID: row.TrialID, SiteID: row.SiteID,
			}); err != nil {
				return nil, err
			}
			return &eprov1.ReviewFreeTextResponse{ResponseId: row.ResponseID, Revision: int32(row.Revision), LinkId: req.GetLinkId(),
				Decision: req.GetDecision(), ReviewedAt: timestamppb.New(now)}, nil
		})
	return res, db.ConnectError(err, "response")
}

// hasFreeText reports whether the revision's answer to linkID carries free text
// (what a de-identified view withholds as free text).
func hasFreeText(ctx context.Context, c *ent.Client, row *ent.Response, linkID string) (bool, error) {
	qrow, err := c.Questionnaire.Get(ctx, row.QuestionnaireID)
	if err != nil {
		return false, err
	}
	pb, err := questionnaireOf(qrow)
	if err != nil {
		return false, err
	}
	def := contract.Definition(pb)
	it := def.Item(linkID)
	if it == nil {
		return false, nil
	}
	stored := &eprov1.SubmitResponseRequest{}
	if err := protojson.Unmarshal([]byte(row.Answers), stored); err != nil {
		return false, err
	}
	for _, a := range contract.Answers(stored.GetAnswers()) {
		if a.LinkID == linkID {
			return deid.Policy{FreeText: deid.Withhold}.Answer(it, a, deid.Unreviewed).Withheld == deid.FreeTextNotRequested, nil
		}
	}
	return false, nil
}
