package epro

import (
	"context"
	"slices"

	"connectrpc.com/connect/v2"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/epro/ent/subjectvisit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// GetMyQuestionnaire returns a version of one of the calling patient's tasks,
// without alert rules, thresholds, description or author. A draft, a version not
// assigned to the patient and an unknown id get the same NOT_FOUND.
func (s *Service) GetMyQuestionnaire(ctx context.Context, req *eprov1.GetMyQuestionnaireRequest) (*eprov1.GetMyQuestionnaireResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	notFound := connect.NewError(connect.CodeNotFound, "questionnaire: not found")
	visits, err := s.ent.SubjectVisit.Query().Where(subjectvisit.SubjectUUID(caller.Subject)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "questionnaire")
	}
	assigned := false
	for _, v := range visits {
		assigned = assigned || slices.Contains(v.QuestionnaireIds, req.GetQuestionnaireId())
	}
	if !assigned {
		return nil, notFound
	}
	row, err := s.ent.Questionnaire.Get(ctx, req.GetQuestionnaireId())
	if err != nil || row.Status == "DRAFT" {
		return nil, notFound
	}
	full, err := questionnaireOf(row)
	if err != nil {
		return nil, err
	}
	pq := &eprov1.PatientQuestionnaire{
		QuestionnaireId: row.ID, Url: row.URL, Version: row.Version, Title: full.GetTitle(), Language: full.GetLanguage(),
		Copyright: full.GetCopyright(), Items: full.GetItems(), ShowScoresToPatient: row.ShowScoresToPatient,
	}
	if row.ShowScoresToPatient {
		pq.ScoringRules = full.GetScoringRules()
	}
	if lang := req.GetLanguage(); lang != "" && lang != full.GetLanguage() {
		translate(pq.Items, lang)
	}
	return &eprov1.GetMyQuestionnaireResponse{Questionnaire: pq}, nil
}

// translate puts each item's text in lang where it has a translation.
func translate(items []*eprov1.QuestionnaireItem, lang string) {
	for _, it := range items {
		for _, tr := range it.GetTextTranslations() {
			if tr.GetLanguage() == lang {
				it.Text = tr.GetText()
			}
		}
		translate(it.GetItems(), lang)
	}
}
