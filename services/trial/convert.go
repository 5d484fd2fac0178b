package trial

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/schema"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

// Conversions between storage rows, the domain and contract messages.

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t.UTC())
}

func tsp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func trialMsg(t *ent.Trial) *trialv1.Trial {
	m := &trialv1.Trial{
		TrialId: t.ID, ProtocolCode: t.ProtocolCode, Title: t.Title,
		Phase: trialv1.TrialPhase(t.Phase), Sponsor: t.Sponsor, Status: trialv1.TrialStatus(t.Status),
		Description: t.Description, CurrentVisitScheduleVersion: t.CurrentScheduleVersion,
		CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt), LateSubmissionGraceHours: t.LateSubmissionGraceHours,
	}
	for _, r := range t.RegistryIds {
		m.RegistryIds = append(m.RegistryIds, &trialv1.RegistryId{Registry: r.Registry, Id: r.ID})
	}
	return m
}

func registryIDs(in []*trialv1.RegistryId) []schema.RegistryID {
	out := make([]schema.RegistryID, 0, len(in))
	for _, r := range in {
		out = append(out, schema.RegistryID{Registry: r.GetRegistry(), ID: r.GetId()})
	}
	return out
}

func siteMsg(s *ent.Site) *trialv1.Site {
	return &trialv1.Site{
		SiteId: s.ID, TrialId: s.TrialID, SiteCode: s.SiteCode, Name: s.Name,
		CountryCode: s.CountryCode, TimeZone: s.TimeZone, CreatedAt: ts(s.CreatedAt),
		Status: trialv1.SiteStatus(s.Status), ClosedAt: tsp(s.ClosedAt),
	}
}

func questionnaireRefs(in []*trialv1.QuestionnaireRef) []schema.QuestionnaireRef {
	out := make([]schema.QuestionnaireRef, 0, len(in))
	for _, q := range in {
		out = append(out, schema.QuestionnaireRef{ID: q.GetQuestionnaireId(), URL: q.GetQuestionnaireUrl(), Version: q.GetVersion()})
	}
	return out
}

func questionnaireMsgs(in []schema.QuestionnaireRef) []*trialv1.QuestionnaireRef {
	out := make([]*trialv1.QuestionnaireRef, 0, len(in))
	for _, q := range in {
		m := &trialv1.QuestionnaireRef{Version: q.Version}
		if q.ID != "" {
			m.Ref = &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: q.ID}
		} else {
			m.Ref = &trialv1.QuestionnaireRef_QuestionnaireUrl{QuestionnaireUrl: q.URL}
		}
		out = append(out, m)
	}
	return out
}

func visitDefs(in []*trialv1.Visit) []schema.VisitDef {
	out := make([]schema.VisitDef, 0, len(in))
	for _, v := range in {
		out = append(out, schema.VisitDef{
			Code: v.GetCode(), Name: v.GetName(), StudyDay: int(v.GetStudyDay()),
			Before: int(v.GetWindowBeforeDays()), After: int(v.GetWindowAfterDays()),
			Questionnaires: questionnaireRefs(v.GetQuestionnaires()),
		})
	}
	return out
}

func scheduleMsg(s *ent.Schedule) *trialv1.VisitSchedule {
	m := &trialv1.VisitSchedule{
		TrialId: s.TrialID, Version: s.Version, Reason: s.Reason,
		ExistingPlanPolicy: trialv1.ExistingPlanPolicy(s.Policy), CreatedAt: ts(s.CreatedAt),
	}
	for _, v := range sortedDefs(s.Visits) {
		m.Visits = append(m.Visits, &trialv1.Visit{
			Code: v.Code, Name: v.Name, StudyDay: int32(v.StudyDay),
			WindowBeforeDays: int32(v.Before), WindowAfterDays: int32(v.After),
			Questionnaires: questionnaireMsgs(v.Questionnaires),
		})
	}
	return m
}

func domainVisit(v schema.VisitDef) plan.Visit {
	return plan.Visit{Code: v.Code, StudyDay: v.StudyDay, Before: v.Before, After: v.After}
}

// enrollmentMsg is the identified view; withText false leaves out the
// free-text withdrawal reason (patients reading their own plan).
func enrollmentMsg(e *ent.Enrollment, siteCode string, withText bool) *trialv1.Enrollment {
	m := &trialv1.Enrollment{
		EnrollmentId: e.ID, TrialId: e.TrialID, SiteId: e.SiteID, SiteCode: siteCode,
		SubjectUuid: e.SubjectUUID, Status: trialv1.EnrollmentStatus(e.Status),
		EnrollmentDate: e.EnrollmentDate, EndDate: e.EndDate, EndStudyDay: e.EndStudyDay,
		WithdrawalReason:     trialv1.WithdrawalReason(e.WithdrawalReason),
		VisitScheduleVersion: e.ScheduleVersion, CreatedAt: ts(e.CreatedAt), UpdatedAt: ts(e.UpdatedAt),
	}
	if withText {
		m.WithdrawalReasonText = e.WithdrawalText
	}
	return m
}

// window recomputes a stored visit's window from its local dates and zone, so
// what a client sees never depends on UTC instants computed with an older zone
// database.
func window(v *ent.Visit) (plan.Window, error) {
	loc, err := plan.LoadZone(v.TimeZone)
	if err != nil {
		return plan.Window{}, err
	}
	planned, err := plan.ParseDate(v.PlannedDate)
	if err != nil {
		return plan.Window{}, err
	}
	open, err := plan.ParseDate(v.OpenDate)
	if err != nil {
		return plan.Window{}, err
	}
	cl, err := plan.ParseDate(v.CloseDate)
	if err != nil {
		return plan.Window{}, err
	}
	return plan.Window{Planned: planned, Open: open, Close: cl,
		OpensAt: open.Start(loc).UTC(), ClosesAt: cl.AddDays(1).Start(loc).UTC()}, nil
}

func visitMsg(v *ent.Visit, now time.Time) (*trialv1.SubjectVisit, error) {
	w, err := window(v)
	if err != nil {
		return nil, err
	}
	return &trialv1.SubjectVisit{
		SubjectVisitId: v.ID, EnrollmentId: v.EnrollmentID, TrialId: v.TrialID, SubjectUuid: v.SubjectUUID,
		VisitCode: v.Code, VisitName: v.Name, TargetStudyDay: v.StudyDay,
		PlannedDate: v.PlannedDate, WindowOpenDate: v.OpenDate, WindowCloseDate: v.CloseDate,
		WindowOpensAt: ts(w.OpensAt), WindowClosesAt: ts(w.ClosesAt),
		Status:      trialv1.SubjectVisitStatus(plan.StatusAt(plan.Status(v.Status), w, now)),
		CompletedAt: tsp(v.CompletedAt), SourceReferences: v.SourceRefs,
		Questionnaires: questionnaireMsgs(v.Questionnaires), VisitScheduleVersion: v.ScheduleVersion,
		SiteId: v.SiteID, UpdatedAt: ts(v.UpdatedAt), SiteTimeZone: v.TimeZone,
	}, nil
}

func visitMsgs(vs []*ent.Visit, now time.Time) ([]*trialv1.SubjectVisit, error) {
	out := make([]*trialv1.SubjectVisit, 0, len(vs))
	for _, v := range vs {
		m, err := visitMsg(v, now)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
