package epro

import (
	"context"
	"fmt"
	"strconv"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// AmendResponse stores a correction (the patient's own, while the window is
// open) or marks a response entered in error (the patient, or an investigator of
// the subject's site) as a new revision; the earlier revision stays as it was,
// and each changed item's old and new value goes on the audit trail.
func (s *Service) AmendResponse(ctx context.Context, req *eprov1.AmendResponseRequest) (*eprov1.AmendResponseResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	correct := req.GetAction() == eprov1.AmendAction_AMEND_ACTION_CORRECT_ANSWERS
	if correct && caller.Role != authzv1.Role_ROLE_PATIENT {
		return nil, connect.NewError(connect.CodePermissionDenied, "action: only the patient corrects their answers")
	}
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.AmendResponseResponse, error) {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			cur, err := c.Response.Query().Where(entresponse.ResponseID(req.GetResponseId()), entresponse.Current(true)).Only(ctx)
			if err != nil {
				return nil, err
			}
			if (caller.Role == authzv1.Role_ROLE_PATIENT && cur.SubjectUUID != caller.Subject) ||
				(caller.Role == authzv1.Role_ROLE_INVESTIGATOR && !maySeeSite(caller, cur.SiteID)) {
				return nil, connect.NewError(connect.CodeNotFound, "response: not found")
			}
			if int(req.GetExpectedRevision()) != cur.Revision {
				return nil, connect.NewError(connect.CodeAborted, fmt.Sprintf("expected_revision: the current revision is %d", cur.Revision))
			}
			if cur.Status == "ENTERED_IN_ERROR" {
				return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_ENTERED_IN_ERROR, "response_id: entered in error", nil)
			}
			visit, err := c.SubjectVisit.Get(ctx, cur.SubjectVisitID)
			if err != nil {
				return nil, err
			}
			now := s.now()
			if caller.Role == authzv1.Role_ROLE_PATIENT && !now.Before(visit.WindowClosesAt) {
				return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_WINDOW_CLOSED, "response_id: the visit window has closed",
					&eprov1.PreconditionFailure{WindowOpensAt: timestamppb.New(visit.WindowOpensAt), WindowClosesAt: timestamppb.New(visit.WindowClosesAt)})
			}
			qrow, err := c.Questionnaire.Get(ctx, cur.QuestionnaireID)
			if err != nil {
				return nil, err
			}
			qpb, err := questionnaireOf(qrow)
			if err != nil {
				return nil, err
			}
			def := contract.Definition(qpb)
			old := &eprov1.SubmitResponseRequest{}
			if err := protojson.Unmarshal([]byte(cur.Answers), old); err != nil {
				return nil, fmt.Errorf("decode answers: %w", err)
			}
			answers, answersJSON := old.GetAnswers(), cur.Answers
			if correct {
				if err := invalidAnswers(def.Check(contract.Answers(req.GetAnswers()))); err != nil {
					return nil, err
				}
				answers = req.GetAnswers()
				if answersJSON, err = marshalAnswers(answers); err != nil {
					return nil, err
				}
			}
			if n, err := c.Response.Update().Where(entresponse.ID(cur.ID), entresponse.Current(true)).SetCurrent(false).Save(ctx); err != nil || n != 1 {
				if err == nil {
					err = connect.NewError(connect.CodeAborted, "expected_revision: amended concurrently")
				}
				return nil, err
			}
			ref := &eprov1.QuestionnaireRef{QuestionnaireId: qrow.ID, QuestionnaireUrl: qrow.URL, Version: qrow.Version, Title: qrow.Title}
			rev := cur.Revision + 1
			var receipt *eprov1.ResponseReceipt
			if correct {
				receipt, err = s.storeResponse(ctx, tx, c, newResponse{
					responseID: cur.ResponseID, revision: rev, visit: visit, questionnaire: qrow, def: def,
					answers: contract.Answers(answers), answersJSON: answersJSON, authored: now, received: now,
					late: cur.Late, deviation: cur.ProtocolDeviation, role: caller.Role, ref: ref,
				})
				if err != nil {
					return nil, err
				}
				for _, ch := range changedItems(old.GetAnswers(), answers) {
					if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "RESPONSE_AMENDED", RecordType: "RESPONSE", RecordID: cur.ResponseID,
						SubjectUUID: cur.SubjectUUID, Field: "answers." + ch.linkID, OldValue: ch.old, NewValue: ch.new,
						Reason: req.GetReason(), TrialID: cur.TrialID, SiteID: cur.SiteID}); err != nil {
						return nil, err
					}
				}
			} else {
				if err := c.Response.Create().SetID(cur.ResponseID + "/" + strconv.Itoa(rev)).SetResponseID(cur.ResponseID).SetRevision(rev).
					SetCurrent(true).SetTrialID(cur.TrialID).SetSiteID(cur.SiteID).SetSubjectUUID(cur.SubjectUUID).
					SetSubjectVisitID(cur.SubjectVisitID).SetQuestionnaireID(cur.QuestionnaireID).SetStatus("ENTERED_IN_ERROR").
					SetAnswers(cur.Answers).SetScores("{}").SetFiredAlerts([]string{}).SetAuthoredAt(cur.AuthoredAt).SetReceivedAt(now).
					SetLate(cur.Late).SetProtocolDeviation(cur.ProtocolDeviation).SetAuthorRole(caller.Role.String()).Exec(ctx); err != nil {
					return nil, fmt.Errorf("insert revision: %w", err)
				}
				if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "RESPONSE_ENTERED_IN_ERROR", RecordType: "RESPONSE", RecordID: cur.ResponseID,
					SubjectUUID: cur.SubjectUUID, Field: "status", OldValue: cur.Status, NewValue: "ENTERED_IN_ERROR",
					Reason: req.GetReason(), TrialID: cur.TrialID, SiteID: cur.SiteID}); err != nil {
					return nil, err
				}
				// The visit it completed is not complete any more (outbox, as the completion).
				if _, err := s.jobs.InsertTx(ctx, tx, WithdrawCompletion{SubjectUUID: cur.SubjectUUID, TrialID: cur.TrialID,
					SubjectVisitID: cur.SubjectVisitID, ResponseID: cur.ResponseID, Revision: rev}, nil); err != nil {
					return nil, fmt.Errorf("enqueue completion withdrawal: %w", err)
				}
				receipt = &eprov1.ResponseReceipt{ResponseId: cur.ResponseID, Revision: int32(rev), Status: eprov1.ResponseStatus_RESPONSE_STATUS_ENTERED_IN_ERROR,
					Questionnaire: ref, TrialId: cur.TrialID, SubjectVisitId: cur.SubjectVisitID,
					AuthoredAt: timestamppb.New(cur.AuthoredAt), ReceivedAt: timestamppb.New(now), Late: cur.Late}
			}
			return &eprov1.AmendResponseResponse{Receipt: receipt}, nil
		})
	return res, db.ConnectError(err, "response")
}

type itemChange struct{ linkID, old, new string }

// changedItems lists, in link_id order of appearance, the items whose values
// differ between two answer sets, with each side in protobuf JSON.
func changedItems(before, after []*eprov1.ItemAnswer) []itemChange {
	enc := func(a *eprov1.ItemAnswer) string {
		if a == nil {
			return ""
		}
		b, _ := protojson.Marshal(&eprov1.ItemAnswer{Values: a.GetValues()})
		return string(b)
	}
	old, seen := map[string]*eprov1.ItemAnswer{}, map[string]bool{}
	for _, a := range before {
		old[a.GetLinkId()] = a
	}
	var out []itemChange
	for _, a := range after {
		seen[a.GetLinkId()] = true
		if o, n := enc(old[a.GetLinkId()]), enc(a); o != n {
			out = append(out, itemChange{a.GetLinkId(), o, n})
		}
	}
	for _, a := range before {
		if !seen[a.GetLinkId()] {
			out = append(out, itemChange{a.GetLinkId(), enc(a), ""})
		}
	}
	return out
}

// GetMyResponse returns one of the calling patient's responses at its latest or
// a given revision, with the answers as given; scores only when the
// questionnaire shows them to patients. Another subject's response is NOT_FOUND.
func (s *Service) GetMyResponse(ctx context.Context, req *eprov1.GetMyResponseRequest) (*eprov1.GetMyResponseResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	notFound := connect.NewError(connect.CodeNotFound, "response: not found")
	rows, err := s.ent.Response.Query().Where(entresponse.ResponseID(req.GetResponseId()), entresponse.SubjectUUID(caller.Subject)).
		Order(ent.Asc(entresponse.FieldRevision)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "response")
	}
	if len(rows) == 0 {
		return nil, notFound
	}
	row := rows[len(rows)-1]
	if rev := int(req.GetRevision()); rev != 0 {
		if rev > len(rows) || rows[rev-1].Revision != rev {
			return nil, notFound
		}
		row = rows[rev-1]
	}
	stored := &eprov1.SubmitResponseRequest{}
	if err := protojson.Unmarshal([]byte(row.Answers), stored); err != nil {
		return nil, fmt.Errorf("decode answers: %w", err)
	}
	scores := &eprov1.ResponseReceipt{}
	if err := protojson.Unmarshal([]byte(row.Scores), scores); err != nil {
		return nil, fmt.Errorf("decode scores: %w", err)
	}
	qrow, err := s.ent.Questionnaire.Get(ctx, row.QuestionnaireID)
	if err != nil {
		return nil, db.ConnectError(err, "questionnaire")
	}
	receipt := &eprov1.ResponseReceipt{
		ResponseId: row.ResponseID, Revision: int32(row.Revision), Status: eprov1.ResponseStatus(eprov1.ResponseStatus_value["RESPONSE_STATUS_"+row.Status]),
		Questionnaire: &eprov1.QuestionnaireRef{QuestionnaireId: qrow.ID, QuestionnaireUrl: qrow.URL, Version: qrow.Version, Title: qrow.Title},
		TrialId:       row.TrialID, SubjectVisitId: row.SubjectVisitID, Scores: scores.GetScores(),
		AuthoredAt: timestamppb.New(row.AuthoredAt), ReceivedAt: timestamppb.New(row.ReceivedAt), Late: row.Late,
	}
	if !qrow.ShowScoresToPatient {
		receipt.ScoresHidden = true
		for _, sc := range receipt.Scores {
			sc.Value, sc.Band = nil, nil
		}
	}
	return &eprov1.GetMyResponseResponse{Receipt: receipt, Answers: stored.GetAnswers(), LatestRevision: int32(rows[len(rows)-1].Revision)}, nil
}
