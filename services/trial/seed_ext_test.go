package trial_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/trial"
)

// noJobs satisfies River, which wants at least one worker per queue; the
// patient stand-in has no jobs.
type noJobs struct{}

func (noJobs) Kind() string { return "patient_standin.none" }

type noJobsWorker struct{ river.WorkerDefaults[noJobs] }

func (noJobsWorker) Work(context.Context, *river.Job[noJobs]) error { return nil }

// patientStandIn is the patient service as the dev stack's table would hold
// it, reduced to what the trial seed needs: GetSubjectStatus and a seed that
// leaves demo.subject_uuid. It stands in for the real patient service until
// the lead swaps it in.
func patientStandIn(p *patients, subject string) platform.Service {
	return platform.Service{
		Name: "patient",
		Mount: func(_ context.Context, m *platform.Mount) error {
			patientv1connect.RegisterPatientServiceHandler(m.RPC(), p)
			river.AddWorker(m.Workers, noJobsWorker{})
			return nil
		},
		Seed: func(_ context.Context, s *platform.Seeder) error {
			p.set(subject, patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE)
			s.Set("demo.subject_uuid", subject)
			return nil
		},
	}
}

// The dev stack's seed, run twice on the same SQLite files as the stack runs
// it: a recruiting demo trial with a Shanghai and a New York site, the demo
// schedule, and the demo patient enrolled once.
func TestSeed(t *testing.T) {
	dir := t.TempDir()
	signer := platformtest.NewSigner(t)
	subject := uuid.NewString()
	p := &patients{statuses: map[string]patientv1.AccountStatus{}}
	run := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		self := "http://" + ln.Addr().String()
		var out bytes.Buffer
		ready := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		proc := platform.Process{
			Name:     "stack-test",
			Services: []platform.Service{patientStandIn(p, subject), trial.Platform()},
			DSN:      func(name string) string { return "sqlite:" + filepath.Join(dir, name+".db") },
			Verifier: auth.NewVerifier(signer.Keys(), platformtest.Issuer),
			Tokens: func(service string) auth.TokenSource {
				return auth.NewSignerTokens(signer, auth.Caller{Subject: service, Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
			},
			Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
				dep.BaseURL = self
				return dep, nil
			},
			ServerOptions: []platform.Option{platform.WithDrainDelay(0)},
			Log:           quiet,
			Seed: &platform.SeedConfig{Out: &out, Mint: func(c auth.Caller) (string, error) {
				tok, _, err := signer.Sign(c, time.Hour)
				return tok, err
			}},
			Ready: func(string) { close(ready) },
		}
		done := make(chan error, 1)
		go func() { done <- proc.Serve(ctx, ln) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("stack stopped: %v", err)
		}
		api := trialv1connect.NewTrialServiceClient(client.New(client.Service("trial", self),
			client.WithTokens(auth.NewSignerTokens(signer, platformtest.Admin(), time.Hour))))
		list, err := api.ListTrials(ctx, &trialv1.ListTrialsRequest{Query: trial.DemoProtocol})
		if err != nil || len(list.GetTrials()) != 1 || list.GetTrials()[0].GetStatus() != trialv1.TrialStatus_TRIAL_STATUS_RECRUITING {
			t.Fatalf("demo trials: %v, %v", err, list.GetTrials())
		}
		tr := list.GetTrials()[0]
		got, err := api.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: tr.GetTrialId()})
		if err != nil || len(got.GetSites()) != 2 || len(got.GetVisitSchedule().GetVisits()) != 5 {
			t.Fatalf("demo trial: %v, %d sites, %d visits", err, len(got.GetSites()), len(got.GetVisitSchedule().GetVisits()))
		}
		plan, err := api.GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{TrialId: tr.GetTrialId(), SubjectUuid: subject})
		if err != nil || len(plan.GetVisits()) != 5 || plan.GetTimeZone() != "Asia/Shanghai" {
			t.Fatalf("demo patient's plan: %v, %d visits in %q", err, len(plan.GetVisits()), plan.GetTimeZone())
		}
		if now := time.Now(); !visitByCode(t, plan.GetVisits(), "SCREENING").GetWindowOpensAt().AsTime().Before(now) ||
			visitByCode(t, plan.GetVisits(), "SCREENING").GetStatus() != trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING {
			t.Errorf("the demo screening is not due now: %v", visitByCode(t, plan.GetVisits(), "SCREENING"))
		}
		en, err := api.ListEnrollments(ctx, &trialv1.ListEnrollmentsRequest{TrialId: tr.GetTrialId()})
		if err != nil || len(en.GetEnrollments()) != 1 {
			t.Fatalf("demo enrollments: %v, %d, want 1", err, len(en.GetEnrollments()))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("stack stop: %v", err)
		}
		return out.String()
	}
	first := run()
	t.Logf("seed output:\n%s", first)
	for _, want := range []string{trial.DemoProtocol, "Asia/Shanghai", "America/New_York", subject} {
		if !strings.Contains(first, want) {
			t.Errorf("seed output lacks %q:\n%s", want, first)
		}
	}
	run() // a restart seeds nothing new (checked inside: one trial, one enrollment)
}
