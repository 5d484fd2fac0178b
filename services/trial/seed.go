package trial

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect/v2"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

// DemoProtocol is the protocol code of the dev stack's demo trial.
const DemoProtocol = "TH-DEMO-001"

// Questionnaire canonicals the demo schedule assigns: the instruments the ePRO
// service ships and seeds (services/epro/internal/instruments), version 1.0.0.
const (
	phq9URL = "https://trialhub.example/fhir/Questionnaire/phq-9"
	gad7URL = "https://trialhub.example/fhir/Questionnaire/gad-7"
)

// demoSchedule is the demo trial's schedule: screening on day -7, baseline on
// day 1, weeks 1, 2 and 4, PHQ-9 and/or GAD-7 at each.
func demoSchedule() []*trialv1.Visit {
	q := func(urls ...string) []*trialv1.QuestionnaireRef {
		var out []*trialv1.QuestionnaireRef
		for _, u := range urls {
			out = append(out, &trialv1.QuestionnaireRef{Ref: &trialv1.QuestionnaireRef_QuestionnaireUrl{QuestionnaireUrl: u}, Version: "1.0.0"})
		}
		return out
	}
	return []*trialv1.Visit{
		{Code: "SCREENING", Name: "Screening", StudyDay: -7, WindowBeforeDays: 3, WindowAfterDays: 3, Questionnaires: q(phq9URL, gad7URL)},
		{Code: "BASELINE", Name: "Baseline", StudyDay: 1, WindowBeforeDays: 0, WindowAfterDays: 3, Questionnaires: q(phq9URL, gad7URL)},
		{Code: "W01", Name: "Week 1", StudyDay: 8, WindowBeforeDays: 2, WindowAfterDays: 2, Questionnaires: q(phq9URL)},
		{Code: "W02", Name: "Week 2", StudyDay: 15, WindowBeforeDays: 2, WindowAfterDays: 2, Questionnaires: q(phq9URL, gad7URL)},
		{Code: "W04", Name: "Week 4", StudyDay: 29, WindowBeforeDays: 3, WindowAfterDays: 3, Questionnaires: q(phq9URL, gad7URL)},
	}
}

// seed adds the dev stack's recruiting demo trial with a site in Asia/Shanghai
// and one in America/New_York and the demo schedule, and enrolls the demo
// patient (s.Get("demo.subject_uuid"), left by the patient service's seed) at
// the Shanghai site with day 1 a week ahead, so that the screening visit is
// due on the day the stack starts. Every step looks first, so a restart adds nothing.
func seed(ctx context.Context, s *platform.Seeder) error {
	c, err := s.Client(auth.Caller{Subject: "seed", Role: authzv1.Role_ROLE_ADMIN})
	if err != nil {
		return err
	}
	api := trialv1connect.NewTrialServiceClient(c)
	found, err := api.ListTrials(ctx, &trialv1.ListTrialsRequest{Query: DemoProtocol})
	if err != nil {
		return fmt.Errorf("find the demo trial: %w", err)
	}
	var trial *trialv1.Trial
	for _, t := range found.GetTrials() {
		if t.GetProtocolCode() == DemoProtocol {
			trial = t
		}
	}
	if trial == nil {
		res, err := api.CreateTrial(ctx, &trialv1.CreateTrialRequest{
			ProtocolCode: DemoProtocol, Title: "TrialHub demo: remote PHQ-9 and GAD-7 follow-up",
			Phase: trialv1.TrialPhase_TRIAL_PHASE_NOT_APPLICABLE, Sponsor: "TrialHub Demo Sponsor",
			Description: "Demo data of the dev stack.", IdempotencyKey: "seed-trial-th-demo-001",
		})
		if err != nil {
			return fmt.Errorf("create the demo trial: %w", err)
		}
		trial = res.GetTrial()
	}
	got, err := api.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: trial.GetTrialId()})
	if err != nil {
		return fmt.Errorf("read the demo trial: %w", err)
	}
	sites := map[string]*trialv1.Site{}
	for _, st := range got.GetSites() {
		sites[st.GetSiteCode()] = st
	}
	for _, want := range []*trialv1.AddSiteRequest{
		{SiteCode: "CN-SH-01", Name: "Shanghai Mental Health Center (demo)", CountryCode: "CN", TimeZone: "Asia/Shanghai"},
		{SiteCode: "US-NY-01", Name: "New York Clinical Research Unit (demo)", CountryCode: "US", TimeZone: "America/New_York"},
	} {
		if sites[want.GetSiteCode()] != nil {
			continue
		}
		want.TrialId, want.IdempotencyKey = trial.GetTrialId(), "seed-site-"+want.GetSiteCode()
		res, err := api.AddSite(ctx, want)
		if err != nil {
			return fmt.Errorf("add demo site %s: %w", want.GetSiteCode(), err)
		}
		sites[want.GetSiteCode()] = res.GetSite()
	}
	if trial.GetCurrentVisitScheduleVersion() == 0 && got.GetTrial().GetCurrentVisitScheduleVersion() == 0 {
		if _, err := api.DefineVisitSchedule(ctx, &trialv1.DefineVisitScheduleRequest{
			TrialId: trial.GetTrialId(), Visits: demoSchedule(), BaseVersion: 0,
			ExistingPlanPolicy: trialv1.ExistingPlanPolicy_EXISTING_PLAN_POLICY_KEEP_VERSION,
			Reason:             "Initial demo schedule", IdempotencyKey: "seed-schedule-th-demo-001",
		}); err != nil {
			return fmt.Errorf("define the demo schedule: %w", err)
		}
	}
	if got.GetTrial().GetStatus() == trialv1.TrialStatus_TRIAL_STATUS_PLANNED {
		if _, err := api.UpdateTrialStatus(ctx, &trialv1.UpdateTrialStatusRequest{
			TrialId: trial.GetTrialId(), Status: trialv1.TrialStatus_TRIAL_STATUS_RECRUITING,
			Reason: "Demo trial opens recruitment", IdempotencyKey: "seed-recruiting-th-demo-001",
		}); err != nil {
			return fmt.Errorf("open recruitment: %w", err)
		}
	}
	shanghai, newYork := sites["CN-SH-01"], sites["US-NY-01"]
	fmt.Fprintf(s.Out, "  trial:      demo trial %s (%s), recruiting\n", DemoProtocol, trial.GetTrialId())
	fmt.Fprintf(s.Out, "              sites CN-SH-01 %s (Asia/Shanghai), US-NY-01 %s (America/New_York)\n",
		shanghai.GetSiteId(), newYork.GetSiteId())
	s.Set("demo.trial_id", trial.GetTrialId())
	s.Set("demo.site_id", shanghai.GetSiteId())

	subject := s.Get("demo.subject_uuid")
	if subject == "" {
		_, err := fmt.Fprintln(s.Out, "              no demo patient (patient service not seeded): nobody enrolled")
		return err
	}
	loc, err := plan.LoadZone(shanghai.GetTimeZone())
	if err != nil {
		return err
	}
	_, err = api.EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{
		TrialId: trial.GetTrialId(), SiteId: shanghai.GetSiteId(), SubjectUuid: subject,
		// Day 1 a week ahead: the screening visit (day -7) is due today.
		EnrollmentDate: plan.Today(time.Now(), loc).AddDays(7).String(), IdempotencyKey: "seed-enroll-" + subject,
	})
	if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
		return fmt.Errorf("enroll the demo patient: %w", err)
	}
	_, err = fmt.Fprintf(s.Out, "              demo patient %s enrolled at CN-SH-01 (screening due today)\n", subject)
	return err
}
