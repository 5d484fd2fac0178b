package epro

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	entq "github.com/trialhub/trialhub/services/epro/ent/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/epro/internal/fhir"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// CreateQuestionnaire stores a new questionnaire version.
func (s *Service) CreateQuestionnaire(ctx context.Context, req *eprov1.CreateQuestionnaireRequest) (*eprov1.CreateQuestionnaireResponse, error) {
	content := &eprov1.Questionnaire{
		Url: req.GetUrl(), Version: req.GetVersion(), Name: req.GetName(), Title: req.GetTitle(), Code: req.GetCode(),
		Description: req.GetDescription(), Language: req.GetLanguage(), Copyright: req.GetCopyright(),
		Items: req.GetItems(), ScoringRules: req.GetScoringRules(), AlertRules: req.GetAlertRules(),
	}
	if err := invalidDefinition(contract.Definition(content).Validate()); err != nil {
		return nil, err
	}
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.CreateQuestionnaireResponse, error) {
			stored, err := s.storeQuestionnaire(ctx, tx, content, req.GetStatus(), req.GetShowScoresToPatient())
			if err != nil {
				return nil, err
			}
			return &eprov1.CreateQuestionnaireResponse{Questionnaire: stored}, nil
		})
	return res, db.ConnectError(err, "questionnaire")
}

// ImportFhirQuestionnaire stores a questionnaire version read from a FHIR R4
// Questionnaire. Parts the model cannot represent are refused with the list of
// them (internal/fhir never drops anything silently), so warnings stay empty.
func (s *Service) ImportFhirQuestionnaire(ctx context.Context, req *eprov1.ImportFhirQuestionnaireRequest) (*eprov1.ImportFhirQuestionnaireResponse, error) {
	d, err := fhir.Import([]byte(req.GetQuestionnaireJson()))
	var unsupported *fhir.Unsupported
	if errors.As(err, &unsupported) {
		return nil, unsupportedError(unsupported)
	}
	if err != nil {
		if ierr := invalidDefinition(err); ierr != nil {
			return nil, ierr
		}
		return nil, connect.NewError(connect.CodeInvalidArgument, "questionnaire_json: "+err.Error()).WithCause(err)
	}
	content := contract.Questionnaire(d)
	content.ScoringRules, content.AlertRules = req.GetScoringRules(), req.GetAlertRules()
	if err := invalidDefinition(contract.Definition(content).Validate()); err != nil {
		return nil, err
	}
	status := req.GetStatus()
	if status == eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_UNSPECIFIED {
		status = eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_DRAFT
	}
	if req.GetValidateOnly() {
		content.Status, content.ShowScoresToPatient = status, req.GetShowScoresToPatient()
		return &eprov1.ImportFhirQuestionnaireResponse{Questionnaire: content}, nil
	}
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.ImportFhirQuestionnaireResponse, error) {
			stored, err := s.storeQuestionnaire(ctx, tx, content, status, req.GetShowScoresToPatient())
			if err != nil {
				return nil, err
			}
			return &eprov1.ImportFhirQuestionnaireResponse{Questionnaire: stored}, nil
		})
	return res, db.ConnectError(err, "questionnaire")
}

// storeQuestionnaire inserts a version and its audit event in tx. A second
// version under a stored url|version is ALREADY_EXISTS (the unique index).
func (s *Service) storeQuestionnaire(ctx context.Context, tx *db.Tx, content *eprov1.Questionnaire, status eprov1.QuestionnaireStatus, showScores bool) (*eprov1.Questionnaire, error) {
	digest, err := contract.Definition(content).Digest()
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err.Error()).WithCause(err)
	}
	body, err := protojson.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encode questionnaire: %w", err)
	}
	caller, _ := auth.CallerFrom(ctx)
	now := s.now()
	row, err := ent.NewClient(ent.Driver(tx.Driver())).Questionnaire.Create().
		SetID(uuid.NewString()).SetURL(content.GetUrl()).SetVersion(content.GetVersion()).
		SetName(content.GetName()).SetTitle(content.GetTitle()).SetStatus(statusName(status)).
		SetDefinition(string(body)).SetDigest(digest).SetShowScoresToPatient(showScores).
		SetCreatedBy(caller.Subject).SetCreatedAt(now).SetUpdatedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert questionnaire %s|%s: %w", content.GetUrl(), content.GetVersion(), err)
	}
	if _, err := s.audit.Append(ctx, tx, audit.Event{
		Action: "QUESTIONNAIRE_CREATED", RecordType: "QUESTIONNAIRE", RecordID: row.ID,
		Field: "status", NewValue: row.Status + " " + content.GetUrl() + "|" + content.GetVersion(),
	}); err != nil {
		return nil, err
	}
	return questionnaireOf(row)
}

// GetQuestionnaire returns one version by id or by canonical url and version
// (empty version: the most recently stored ACTIVE one).
func (s *Service) GetQuestionnaire(ctx context.Context, req *eprov1.GetQuestionnaireRequest) (*eprov1.GetQuestionnaireResponse, error) {
	query := s.ent.Questionnaire.Query()
	switch {
	case req.GetQuestionnaireId() != "":
		query = query.Where(entq.ID(req.GetQuestionnaireId()))
	case req.GetCanonical().GetVersion() != "":
		query = query.Where(entq.URL(req.GetCanonical().GetUrl()), entq.Version(req.GetCanonical().GetVersion()))
	default:
		query = query.Where(entq.URL(req.GetCanonical().GetUrl()), entq.Status(statusName(eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE))).
			Order(ent.Desc(entq.FieldCreatedAt), ent.Desc(entq.FieldID))
	}
	row, err := query.First(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "questionnaire")
	}
	pb, err := questionnaireOf(row)
	if err != nil {
		return nil, err
	}
	return &eprov1.GetQuestionnaireResponse{Questionnaire: pb}, nil
}

// ListQuestionnaires lists versions by url, then most recently stored first.
func (s *Service) ListQuestionnaires(ctx context.Context, req *eprov1.ListQuestionnairesRequest) (*eprov1.ListQuestionnairesResponse, error) {
	offset, err := pageOffset(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pageSize(req.GetPageSize())
	query := s.ent.Questionnaire.Query()
	if req.GetUrl() != "" {
		query = query.Where(entq.URL(req.GetUrl()))
	}
	if len(req.GetStatuses()) > 0 {
		names := make([]string, 0, len(req.GetStatuses()))
		for _, st := range req.GetStatuses() {
			names = append(names, statusName(st))
		}
		query = query.Where(entq.StatusIn(names...))
	}
	rows, err := query.Order(ent.Asc(entq.FieldURL), ent.Desc(entq.FieldCreatedAt), ent.Desc(entq.FieldID)).
		Offset(offset).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "questionnaires")
	}
	res := &eprov1.ListQuestionnairesResponse{}
	if len(rows) > size {
		rows, res.NextPageToken = rows[:size], nextPage(offset+size)
	}
	for _, row := range rows {
		pb, err := questionnaireOf(row)
		if err != nil {
			return nil, err
		}
		res.Questionnaires = append(res.Questionnaires, pb)
	}
	return res, nil
}

// allowedStatus lists the status transitions a version may make.
var allowedStatus = map[string][]string{
	"DRAFT":  {"ACTIVE", "RETIRED"},
	"ACTIVE": {"RETIRED"},
}

// SetQuestionnaireStatus moves a version along DRAFT -> ACTIVE -> RETIRED.
func (s *Service) SetQuestionnaireStatus(ctx context.Context, req *eprov1.SetQuestionnaireStatusRequest) (*eprov1.SetQuestionnaireStatusResponse, error) {
	to := statusName(req.GetStatus())
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*eprov1.SetQuestionnaireStatusResponse, error) {
			client := ent.NewClient(ent.Driver(tx.Driver()))
			row, err := client.Questionnaire.Get(ctx, req.GetQuestionnaireId())
			if err != nil {
				return nil, err
			}
			from := row.Status
			ok := false
			for _, next := range allowedStatus[from] {
				ok = ok || next == to
			}
			if !ok {
				return nil, preconditionError(eprov1.PreconditionReason_PRECONDITION_REASON_STATUS_TRANSITION_NOT_ALLOWED,
					fmt.Sprintf("status: a %s questionnaire version cannot become %s", from, to), nil)
			}
			// The status guard makes a concurrent change lose instead of both passing.
			n, err := client.Questionnaire.Update().Where(entq.ID(row.ID), entq.Status(from)).
				SetStatus(to).SetUpdatedAt(s.now()).Save(ctx)
			if err != nil {
				return nil, err
			}
			if n != 1 {
				return nil, connect.NewError(connect.CodeAborted, "status: changed concurrently; read it again")
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{
				Action: "QUESTIONNAIRE_STATUS_CHANGED", RecordType: "QUESTIONNAIRE", RecordID: row.ID,
				Field: "status", OldValue: from, NewValue: to, Reason: req.GetReason(),
			}); err != nil {
				return nil, err
			}
			row, err = client.Questionnaire.Get(ctx, row.ID)
			if err != nil {
				return nil, err
			}
			pb, err := questionnaireOf(row)
			if err != nil {
				return nil, err
			}
			return &eprov1.SetQuestionnaireStatusResponse{Questionnaire: pb}, nil
		})
	return res, db.ConnectError(err, "questionnaire")
}

// questionnaireOf is the contract form of a stored version.
func questionnaireOf(row *ent.Questionnaire) (*eprov1.Questionnaire, error) {
	pb := &eprov1.Questionnaire{}
	if err := protojson.Unmarshal([]byte(row.Definition), pb); err != nil {
		return nil, fmt.Errorf("decode questionnaire %s: %w", row.ID, err)
	}
	pb.QuestionnaireId = row.ID
	pb.Status = eprov1.QuestionnaireStatus(eprov1.QuestionnaireStatus_value["QUESTIONNAIRE_STATUS_"+row.Status])
	pb.ShowScoresToPatient = row.ShowScoresToPatient
	pb.CreatedBy = row.CreatedBy
	pb.CreatedAt, pb.UpdatedAt = timestamppb.New(row.CreatedAt), timestamppb.New(row.UpdatedAt)
	return pb, nil
}

// trimEnum is an enum value's stored form: its name without the type prefix.
func trimEnum(name, prefix string) string { return strings.TrimPrefix(name, prefix) }

// statusName is the stored form of a status: its enum name without the prefix.
func statusName(st eprov1.QuestionnaireStatus) string {
	return strings.TrimPrefix(st.String(), "QUESTIONNAIRE_STATUS_")
}

// invalidDefinition turns the domain's *questionnaire.Invalid into
// INVALID_ARGUMENT naming each problem's path and rule (never an answer value).
func invalidDefinition(err error) error {
	var invalid *q.Invalid
	if !errors.As(err, &invalid) {
		return nil
	}
	parts := make([]string, 0, len(invalid.Problems))
	for _, p := range invalid.Problems {
		p.Path = contractPath.Replace(p.Path)
		parts = append(parts, p.String())
	}
	return connect.NewError(connect.CodeInvalidArgument, strings.Join(parts, "; "))
}

// contractPath renames the domain's paths to the contract's field names.
var contractPath = strings.NewReplacer("rules[", "scoring_rules[", "alerts[", "alert_rules[")

// unsupportedError lists every part of a FHIR document the import refused.
func unsupportedError(u *fhir.Unsupported) error {
	return connect.NewError(connect.CodeInvalidArgument, "questionnaire_json: "+u.Error())
}

const defaultPageSize = 50

func pageSize(n int32) int {
	if n <= 0 {
		return defaultPageSize
	}
	return int(n)
}

// Page tokens are the offset of the next page, opaque to clients.
func nextPage(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(offset)))
}

func pageOffset(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil && len(raw) > 1 && raw[0] == 'o' {
		if n, err := strconv.Atoi(string(raw[1:])); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, connect.NewError(connect.CodeInvalidArgument, "page_token: not a token this list returned")
}
