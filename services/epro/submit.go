package epro

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
	"github.com/trialhub/trialhub/services/epro/internal/window"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// SubmitResponse stores the calling patient's answers to one task, or keeps them
// in the quarantine when the patient cannot fix why they are refused. Everything
// is checked against the local copies (visit plan, questionnaire); the response,
// its audit event, its idempotency record and its jobs are one transaction, and
// no other service is called.
func (s *Service) SubmitResponse(ctx context.Context, req *eprov1.SubmitResponseRequest) (*eprov1.SubmitResponseResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	received := s.now()
	visit, err := s.ent.SubjectVisit.Get(ctx, req.GetSubjectVisitId())
	if ent.IsNotFound(err) || (err == nil && (visit.SubjectUUID != caller.Subject || visit.TrialID != req.GetTrialId())) {
		// Another subject's visit is answered like an unknown one: nothing is revealed.
		return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_NOT_ENROLLED,
			"subject_visit_id: no planned visit of yours in this trial (a new plan may still be on its way: retry later)", nil)
	}
	if err != nil {
		return nil, db.ConnectError(err, "visit")
	}
	if !slices.Contains(visit.QuestionnaireIds, req.GetQuestionnaireId()) {
		return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_NOT_ASSIGNED,
			"questionnaire_id: not assigned to this visit", nil)
	}
	qrow, err := s.ent.Questionnaire.Get(ctx, req.GetQuestionnaireId())
	if err != nil {
		return nil, db.ConnectError(err, "questionnaire")
	}
	if qrow.Status == "DRAFT" {
		return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_QUESTIONNAIRE_NOT_ACTIVE,
			"questionnaire_id: this version is not released", nil)
	}
	qpb, err := questionnaireOf(qrow)
	if err != nil {
		return nil, err
	}
	def := contract.Definition(qpb)
	answers := contract.Answers(req.GetAnswers())
	if err := invalidAnswers(def.Check(answers)); err != nil {
		return nil, err
	}
	w := window.Window{Opens: visit.WindowOpensAt, Closes: visit.WindowClosesAt}
	authored := req.GetAuthoredAt().AsTime()
	grace := s.grace
	if visit.GraceHours != nil {
		grace = time.Duration(*visit.GraceHours) * time.Hour
	}
	verdict := w.Decide(authored, received, grace)
	switch verdict {
	case window.NotYetOpen:
		return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_WINDOW_NOT_OPEN,
			"authored_at: the visit window has not opened yet", &eprov1.PreconditionFailure{
				WindowOpensAt: timestamppb.New(w.Opens), WindowClosesAt: timestamppb.New(w.Closes)})
	case window.AuthoredInFuture:
		return nil, connect.NewError(connect.CodeInvalidArgument, "authored_at: later than the server's clock allows")
	}
	answersJSON, err := marshalAnswers(req.GetAnswers())
	if err != nil {
		return nil, err
	}
	ref := &eprov1.QuestionnaireRef{QuestionnaireId: qrow.ID, QuestionnaireUrl: qrow.URL, Version: qrow.Version, Title: qrow.Title}
	outcome, quarantined := "", "" // set when this call stores (not on a replay)
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.SubmitResponseResponse, error) {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			existing, err := c.Response.Query().Where(entresponse.SubjectVisitID(visit.ID),
				entresponse.QuestionnaireID(qrow.ID), entresponse.Current(true), entresponse.StatusNEQ("ENTERED_IN_ERROR")).First(ctx)
			if err != nil && !ent.IsNotFound(err) {
				return nil, err
			}
			reason := eprov1.QuarantineReason_QUARANTINE_REASON_UNSPECIFIED
			existingID := ""
			switch {
			case visit.Status == "CANCELLED":
				reason = eprov1.QuarantineReason_QUARANTINE_REASON_SUBJECT_WITHDRAWN
			case qrow.Status == "RETIRED":
				reason = eprov1.QuarantineReason_QUARANTINE_REASON_QUESTIONNAIRE_RETIRED
			case existing != nil:
				reason, existingID = eprov1.QuarantineReason_QUARANTINE_REASON_ALREADY_ANSWERED, existing.ResponseID
			case verdict == window.Closed:
				reason = eprov1.QuarantineReason_QUARANTINE_REASON_WINDOW_CLOSED
			}
			if reason != eprov1.QuarantineReason_QUARANTINE_REASON_UNSPECIFIED {
				outcome, quarantined = outcomeQuarantined, trimEnum(reason.String(), "QUARANTINE_REASON_")
				return s.quarantine(ctx, tx, c, visit, ref, reason, existingID, answersJSON, authored, received)
			}
			receipt, err := s.storeResponse(ctx, tx, c, newResponse{
				responseID: uuid.NewString(), revision: 1, visit: visit, questionnaire: qrow, def: def,
				answers: answers, answersJSON: answersJSON, authored: authored, received: received,
				late: verdict == window.Late, role: authzv1.Role_ROLE_PATIENT, ref: ref,
			})
			if err != nil {
				return nil, err
			}
			outcome, quarantined = outcomeAccepted, ""
			if verdict == window.Late {
				outcome = outcomeLate
			}
			return &eprov1.SubmitResponseResponse{Outcome: &eprov1.SubmitResponseResponse_Receipt{Receipt: receipt}}, nil
		})
	if err == nil && outcome != "" {
		s.met.submissions.WithLabelValues(qrow.URL, qrow.Version, outcome).Inc()
		if quarantined != "" {
			s.met.quarantined.WithLabelValues(quarantined).Inc()
		}
	}
	return res, db.ConnectError(err, "response")
}

// newResponse is one revision to store.
type newResponse struct {
	responseID    string
	revision      int
	visit         *ent.SubjectVisit
	questionnaire *ent.Questionnaire
	def           *q.Definition
	answers       []q.Answer
	answersJSON   string
	authored      time.Time
	received      time.Time
	late          bool
	deviation     bool
	role          authzv1.Role
	ref           *eprov1.QuestionnaireRef
}

// storeResponse inserts a revision with its score, its audit event and its jobs:
// the visit completion when every questionnaire of the visit is answered, and a
// safety alert per fired alert rule.
func (s *Service) storeResponse(ctx context.Context, tx *db.Tx, c *ent.Client, r newResponse) (*eprov1.ResponseReceipt, error) {
	result := r.def.Score(r.answers)
	scores := scoresOf(r.def, result)
	scoresJSON, err := protojson.Marshal(&eprov1.ResponseReceipt{Scores: scores})
	if err != nil {
		return nil, fmt.Errorf("encode scores: %w", err)
	}
	var fired []string
	var firedPB []*eprov1.FiredAlert
	for _, a := range result.Fired {
		fired = append(fired, a.Name)
		firedPB = append(firedPB, &eprov1.FiredAlert{AlertRuleName: a.Name, Priority: eprov1.AlertPriority(a.Priority), PatientMessage: a.PatientMessage})
	}
	status := "COMPLETED"
	if r.revision > 1 {
		status = "AMENDED"
	}
	if err := c.Response.Create().SetID(r.responseID + "/" + strconv.Itoa(r.revision)).SetResponseID(r.responseID).
		SetRevision(r.revision).SetCurrent(true).SetTrialID(r.visit.TrialID).SetSiteID(r.visit.SiteID).
		SetSubjectUUID(r.visit.SubjectUUID).SetSubjectVisitID(r.visit.ID).SetQuestionnaireID(r.questionnaire.ID).
		SetStatus(status).SetAnswers(r.answersJSON).SetScores(string(scoresJSON)).SetFiredAlerts(fired).
		SetAuthoredAt(r.authored).SetReceivedAt(r.received).SetLate(r.late).SetProtocolDeviation(r.deviation).
		SetAuthorRole(r.role.String()).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert response: %w", err)
	}
	if _, err := s.audit.Append(ctx, tx, audit.Event{
		Action: "RESPONSE_SUBMITTED", RecordType: "RESPONSE", RecordID: r.responseID, SubjectUUID: r.visit.SubjectUUID,
		Field: "revision", NewValue: strconv.Itoa(r.revision), TrialID: r.visit.TrialID, SiteID: r.visit.SiteID,
	}); err != nil {
		return nil, err
	}
	// The visit is complete when each of its questionnaires has a current response.
	done, err := c.Response.Query().Where(entresponse.SubjectVisitID(r.visit.ID), entresponse.Current(true),
		entresponse.StatusNEQ("ENTERED_IN_ERROR")).All(ctx)
	if err != nil {
		return nil, err
	}
	answered := map[string]string{}
	for _, d := range done {
		answered[d.QuestionnaireID] = d.ResponseID
	}
	complete := true
	var ids []string
	for _, qid := range r.visit.QuestionnaireIds {
		id, ok := answered[qid]
		complete = complete && ok
		ids = append(ids, id)
	}
	if complete && r.revision == 1 {
		if _, err := s.jobs.InsertTx(ctx, tx, RecordCompletion{SubjectUUID: r.visit.SubjectUUID, TrialID: r.visit.TrialID,
			SubjectVisitID: r.visit.ID, CompletedAt: r.authored, ResponseIDs: ids}, nil); err != nil {
			return nil, fmt.Errorf("enqueue visit completion: %w", err)
		}
	}
	for _, a := range result.Fired {
		if _, err := s.jobs.InsertTx(ctx, tx, SafetyAlert{SubjectUUID: r.visit.SubjectUUID, TrialID: r.visit.TrialID, SiteID: r.visit.SiteID,
			SubjectVisitID: r.visit.ID, ResponseID: r.responseID, Rule: a.Name, Urgent: a.Priority == scoring.PriorityUrgent}, nil); err != nil {
			return nil, fmt.Errorf("enqueue safety alert: %w", err)
		}
	}
	receipt := &eprov1.ResponseReceipt{
		ResponseId: r.responseID, Revision: int32(r.revision), Status: eprov1.ResponseStatus(eprov1.ResponseStatus_value["RESPONSE_STATUS_"+status]),
		Questionnaire: r.ref, TrialId: r.visit.TrialID, SubjectVisitId: r.visit.ID, Scores: scores, FiredAlerts: firedPB,
		AuthoredAt: timestamppb.New(r.authored), ReceivedAt: timestamppb.New(r.received), Late: r.late,
	}
	if !r.questionnaire.ShowScoresToPatient && r.role == authzv1.Role_ROLE_PATIENT {
		receipt.ScoresHidden = true
		for _, sc := range receipt.Scores {
			sc.Value, sc.Band = nil, nil
		}
	}
	return receipt, nil
}

// quarantine keeps a submission the patient cannot fix, with its audit event.
func (s *Service) quarantine(ctx context.Context, tx *db.Tx, c *ent.Client, visit *ent.SubjectVisit, ref *eprov1.QuestionnaireRef,
	reason eprov1.QuarantineReason, existingID, answersJSON string, authored, received time.Time) (*eprov1.SubmitResponseResponse, error) {
	id := uuid.NewString()
	name := trimEnum(reason.String(), "QUARANTINE_REASON_")
	if err := c.Quarantine.Create().SetID(id).SetReason(name).SetState("PENDING").SetTrialID(visit.TrialID).
		SetSiteID(visit.SiteID).SetSubjectUUID(visit.SubjectUUID).SetSubjectVisitID(visit.ID).
		SetQuestionnaireID(ref.GetQuestionnaireId()).SetAnswers(answersJSON).SetAuthoredAt(authored).
		SetReceivedAt(received).SetExistingResponseID(existingID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert quarantine: %w", err)
	}
	if _, err := s.audit.Append(ctx, tx, audit.Event{
		Action: "SUBMISSION_QUARANTINED", RecordType: "QUARANTINE", RecordID: id, SubjectUUID: visit.SubjectUUID,
		Field: "reason", NewValue: name, TrialID: visit.TrialID, SiteID: visit.SiteID,
	}); err != nil {
		return nil, err
	}
	return &eprov1.SubmitResponseResponse{Outcome: &eprov1.SubmitResponseResponse_Quarantined{Quarantined: &eprov1.QuarantineNotice{
		QuarantineId: id, Reason: reason, TrialId: visit.TrialID, SubjectVisitId: visit.ID, Questionnaire: ref,
		AuthoredAt: timestamppb.New(authored), ReceivedAt: timestamppb.New(received), ExistingResponseId: existingID,
	}}}, nil
}

// scoresOf is the contract form of a response's totals.
func scoresOf(d *q.Definition, result scoring.Result) []*eprov1.Score {
	var out []*eprov1.Score
	for i, t := range result.Totals {
		rule := d.Rules[i]
		sc := &eprov1.Score{ScoringRuleName: t.Rule, Title: rule.Title}
		if rule.Code != nil {
			sc.Code = &eprov1.Coding{System: rule.Code.System, Code: rule.Code.Code, Display: rule.Code.Display}
		}
		if t.Known {
			v := t.Value
			sc.Value = &v
		}
		if t.Band != nil {
			sc.Band = &eprov1.SeverityBand{Min: t.Band.Min, Max: t.Band.Max, Label: t.Band.Label}
			if t.Band.Code != nil {
				sc.Band.Code = &eprov1.Coding{System: t.Band.Code.System, Code: t.Band.Code.Code, Display: t.Band.Code.Display}
			}
		}
		out = append(out, sc)
	}
	return out
}

// marshalAnswers stores answers as the contract's JSON (a SubmitResponseRequest
// carrying only them).
func marshalAnswers(answers []*eprov1.ItemAnswer) (string, error) {
	b, err := protojson.Marshal(&eprov1.SubmitResponseRequest{Answers: answers})
	if err != nil {
		return "", fmt.Errorf("encode answers: %w", err)
	}
	return string(b), nil
}

// invalidAnswers turns the domain's *questionnaire.Invalid for answers into
// INVALID_ARGUMENT naming each item and rule; messages never carry a value.
func invalidAnswers(err error) error {
	var invalid *q.Invalid
	if !errors.As(err, &invalid) {
		return nil
	}
	return invalidDefinition(err)
}
