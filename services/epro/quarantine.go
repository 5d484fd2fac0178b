package epro

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entquarantine "github.com/trialhub/trialhub/services/epro/ent/quarantine"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// ListQuarantine lists a trial's quarantined submissions, oldest first, with
// the answers' values left out (the site resolves on reason, visit and version;
// the answers become readable de-identified once accepted).
func (s *Service) ListQuarantine(ctx context.Context, req *eprov1.ListQuarantineRequest) (*eprov1.ListQuarantineResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	sites, err := analysisScope(caller, req.GetTrialId(), req.GetSiteId())
	if err != nil {
		return nil, err
	}
	offset, err := pageOffset(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	states := []string{"PENDING"}
	if len(req.GetStates()) > 0 {
		states = states[:0]
		for _, st := range req.GetStates() {
			states = append(states, trimEnum(st.String(), "QUARANTINE_STATE_"))
		}
	}
	query := s.ent.Quarantine.Query().Where(entquarantine.TrialID(req.GetTrialId()), entquarantine.StateIn(states...))
	if req.GetSiteId() != "" {
		query = query.Where(entquarantine.SiteID(req.GetSiteId()))
	} else if sites != nil {
		query = query.Where(entquarantine.SiteIDIn(sites...))
	}
	size := pageSize(req.GetPageSize())
	rows, err := query.Order(ent.Asc(entquarantine.FieldReceivedAt), ent.Asc(entquarantine.FieldID)).Offset(offset).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "quarantine")
	}
	res := &eprov1.ListQuarantineResponse{}
	if len(rows) > size {
		rows, res.NextPageToken = rows[:size], nextPage(offset+size)
	}
	for _, r := range rows {
		res.Submissions = append(res.Submissions, s.quarantinedOf(ctx, r))
	}
	return res, nil
}

// ResolveQuarantine accepts a quarantined submission as a response flagged as a
// protocol deviation, or rejects it; both with the reason on the audit trail.
func (s *Service) ResolveQuarantine(ctx context.Context, req *eprov1.ResolveQuarantineRequest) (*eprov1.ResolveQuarantineResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.ResolveQuarantineResponse, error) {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			row, err := c.Quarantine.Get(ctx, req.GetQuarantineId())
			if err != nil {
				return nil, err
			}
			if !caller.CanAccessTrial(row.TrialID) || !maySeeSite(caller, row.SiteID) {
				return nil, connect.NewError(connect.CodePermissionDenied, "quarantine_id: the subject's trial or site is not in your scope")
			}
			if row.State != "PENDING" {
				return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_QUARANTINE_RESOLVED, "quarantine_id: already resolved", nil)
			}
			now := s.now()
			update := c.Quarantine.UpdateOneID(row.ID).Where(entquarantine.State("PENDING")).SetResolvedAt(now)
			action := "QUARANTINE_REJECTED"
			if req.GetResolution() == eprov1.QuarantineResolution_QUARANTINE_RESOLUTION_ACCEPT {
				action = "QUARANTINE_ACCEPTED"
				responseID, err := s.accept(ctx, tx, c, row)
				if err != nil {
					return nil, err
				}
				update = update.SetState("ACCEPTED").SetResponseID(responseID)
			} else {
				update = update.SetState("REJECTED")
			}
			if err := update.Exec(ctx); err != nil {
				return nil, err
			}
			row, err = c.Quarantine.Get(ctx, row.ID)
			if err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{
				Action: action, RecordType: "QUARANTINE", RecordID: row.ID, SubjectUUID: row.SubjectUUID,
				Field: "state", OldValue: "PENDING", NewValue: row.State + responseSuffix(row.ResponseID),
				Reason: req.GetReason(), TrialID: row.TrialID, SiteID: row.SiteID,
			}); err != nil {
				return nil, err
			}
			return &eprov1.ResolveQuarantineResponse{Submission: s.quarantinedOf(ctx, row)}, nil
		})
	return res, db.ConnectError(err, "quarantine")
}

func responseSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " " + id
}

// accept stores a quarantined submission as revision 1 of a new response
// flagged as a protocol deviation, scored and with its jobs, as a submission.
func (s *Service) accept(ctx context.Context, tx *db.Tx, c *ent.Client, row *ent.Quarantine) (string, error) {
	existing, err := c.Response.Query().Where(entresponse.SubjectVisitID(row.SubjectVisitID), entresponse.QuestionnaireID(row.QuestionnaireID),
		entresponse.Current(true), entresponse.StatusNEQ("ENTERED_IN_ERROR")).First(ctx)
	if err == nil {
		return "", preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_ALREADY_ANSWERED,
			"quarantine_id: the visit's questionnaire has a response by now", &eprov1.PreconditionFailure{ExistingResponseId: existing.ResponseID})
	}
	if !ent.IsNotFound(err) {
		return "", err
	}
	visit, err := c.SubjectVisit.Get(ctx, row.SubjectVisitID)
	if err != nil {
		return "", fmt.Errorf("visit of quarantined submission: %w", err)
	}
	qrow, err := c.Questionnaire.Get(ctx, row.QuestionnaireID)
	if err != nil {
		return "", fmt.Errorf("questionnaire of quarantined submission: %w", err)
	}
	qpb, err := questionnaireOf(qrow)
	if err != nil {
		return "", err
	}
	stored := &eprov1.SubmitResponseRequest{}
	if err := protojson.Unmarshal([]byte(row.Answers), stored); err != nil {
		return "", fmt.Errorf("decode quarantined answers: %w", err)
	}
	responseID := row.ID // the quarantine id becomes the response id: one name for one submission
	_, err = s.storeResponse(ctx, tx, c, newResponse{
		responseID: responseID, revision: 1, visit: visit, questionnaire: qrow, def: contract.Definition(qpb),
		answers: contract.Answers(stored.GetAnswers()), answersJSON: row.Answers, authored: row.AuthoredAt,
		received: row.ReceivedAt, late: row.ReceivedAt.After(visit.WindowClosesAt), deviation: true,
		role: authzv1.Role_ROLE_PATIENT,
		ref:  &eprov1.QuestionnaireRef{QuestionnaireId: qrow.ID, QuestionnaireUrl: qrow.URL, Version: qrow.Version, Title: qrow.Title},
	})
	return responseID, err
}

func (s *Service) quarantinedOf(ctx context.Context, r *ent.Quarantine) *eprov1.QuarantinedSubmission {
	pb := &eprov1.QuarantinedSubmission{
		QuarantineId: r.ID, Reason: eprov1.QuarantineReason(eprov1.QuarantineReason_value["QUARANTINE_REASON_"+r.Reason]),
		State: eprov1.QuarantineState(eprov1.QuarantineState_value["QUARANTINE_STATE_"+r.State]), TrialId: r.TrialID,
		SiteId: r.SiteID, SubjectUuid: r.SubjectUUID, SubjectVisitId: r.SubjectVisitID,
		Questionnaire: &eprov1.QuestionnaireRef{QuestionnaireId: r.QuestionnaireID}, ExistingResponseId: r.ExistingResponseID,
		ResponseId: r.ResponseID, ReceivedAt: timestamppb.New(r.ReceivedAt),
	}
	if r.ResolvedAt != nil {
		pb.ResolvedAt = timestamppb.New(*r.ResolvedAt)
	}
	if v, err := s.ent.SubjectVisit.Get(ctx, r.SubjectVisitID); err == nil {
		pb.VisitCode = v.VisitCode
		if r.ReceivedAt.After(v.WindowClosesAt) {
			pb.HoursAfterWindow = int32(r.ReceivedAt.Sub(v.WindowClosesAt).Hours())
		}
	}
	if q, err := s.ent.Questionnaire.Get(ctx, r.QuestionnaireID); err == nil {
		pb.Questionnaire.QuestionnaireUrl, pb.Questionnaire.Version, pb.Questionnaire.Title = q.URL, q.Version, q.Title
	}
	return pb
}

// maySeeSite reports whether the caller may act on a site: investigators only on
// the sites of their token, administrators on all.
func maySeeSite(c auth.Caller, site string) bool {
	return c.Role != authzv1.Role_ROLE_INVESTIGATOR || slices.Contains(c.Sites, site)
}
