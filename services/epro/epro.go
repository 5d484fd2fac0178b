// Package epro is the ePRO service: versioned, scored questionnaires and the
// patients' responses under a pseudonymous subject_uuid, with de-identified
// views for analysts. It implements trialhub.epro.v1.EproService on the platform
// kit, with ent over PostgreSQL or SQLite.
//
// Its database holds subject_uuid and answers, never a name, national ID, phone,
// device token or calendar birth date. The domain (definitions, answer checks,
// scoring, de-identification, windows, FHIR) is plain Go in internal/; the
// handlers here translate between the contract and it and choose the codes.
package epro

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/riverqueue/river"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/epro/ent"
	"github.com/trialhub/trialhub/services/epro/internal/contract"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

//go:embed migrations
var migrations embed.FS

// Name is the service's name in the kit (data/epro.db in the dev stack).
const Name = "epro"

// Service implements trialhub.epro.v1.EproService. Methods not built yet answer
// UNIMPLEMENTED (see README.md).
type Service struct {
	eprov1connect.UnimplementedEproServiceHandler

	db    *db.DB
	ent   *ent.Client
	jobs  *jobs.Queue
	audit *audit.Log
	idem  *idempotency.Store
	log   *slog.Logger
	now   func() time.Time
	// grace is how late after a window closes a response authored in it is
	// still accepted (flagged late) when the visit's copy does not carry its
	// trial's grace period (Trial.late_submission_grace_hours): DefaultGrace
	// unless configured.
	grace         time.Duration
	trials        trialv1connect.TrialServiceClient
	notifications notificationv1connect.NotificationServiceClient
	met           *metrics
}

// DefaultGrace is the offline grace period: a phone that was offline may deliver
// a response authored in the window up to 24 hours after the window closed.
const DefaultGrace = 24 * time.Hour

// Dependencies this service declares: the trial service (the visit plan
// through its worklist, visit completions) and the notification service (safety
// alerts). Both are called only from River jobs, never on a request's path.
const (
	TrialDependency        = "trial"
	NotificationDependency = "notification"
)

// PollEvery is how often the worklist poller runs (see visits.go).
var PollEvery = 30 * time.Second

// Platform returns the ePRO service as the kit mounts it.
func Platform() platform.Service {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return platform.Service{
		Name:       Name,
		Migrations: sub,
		Needs: []client.Dependency{
			client.Service(TrialDependency, ""),
			client.Service(NotificationDependency, ""),
		},
		Mount: func(_ context.Context, m *platform.Mount) error {
			grace, err := durationEnv("TRIALHUB_EPRO_GRACE", DefaultGrace)
			if err != nil {
				return err
			}
			met, err := newMetrics(m.Metrics)
			if err != nil {
				return err
			}
			s := &Service{
				met: met, db: m.DB, ent: ent.NewClient(ent.Driver(m.DB.Driver())), jobs: m.Jobs, audit: m.Audit,
				idem: m.Idempotency, log: m.Log, now: func() time.Time { return time.Now().UTC() }, grace: grace,
				trials:        trialv1connect.NewTrialServiceClient(m.Client(TrialDependency)),
				notifications: notificationv1connect.NewNotificationServiceClient(m.Client(NotificationDependency)),
			}
			register(m.RPC(), s) // behind each method's request cap (limits.go)
			river.AddWorker(m.Workers, &pollWorklistWorker{s: s})
			river.AddWorker(m.Workers, &recordCompletionWorker{s: s})
			river.AddWorker(m.Workers, &withdrawCompletionWorker{s: s})
			river.AddWorker(m.Workers, &safetyAlertWorker{s: s})
			m.Jobs.Client().PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(PollEvery),
				func() (river.JobArgs, *river.InsertOpts) { return PollWorklist{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
			return nil
		},
		Seed: seed,
	}
}

// seed stores the instruments the platform ships (PHQ-9, GAD-7) as ACTIVE
// versions through the API; the idempotency keys and ALREADY_EXISTS make a rerun
// add nothing.
func seed(ctx context.Context, s *platform.Seeder) error {
	admin, err := s.Client(auth.Caller{Subject: "seed-admin", Role: authzv1.Role_ROLE_ADMIN})
	if err != nil {
		return err
	}
	c := eprov1connect.NewEproServiceClient(admin)
	for _, d := range instruments.All() {
		if _, err := c.CreateQuestionnaire(ctx, seedRequest(d)); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return fmt.Errorf("seed %s: %w", d.Canonical(), err)
		}
		if _, err := fmt.Fprintf(s.Out, "  epro:       %s (%s)\n", d.Title, d.Canonical()); err != nil {
			return err
		}
	}
	return nil
}

// seedRequest is the CreateQuestionnaire request that stores a shipped
// instrument as an ACTIVE version that shows patients their scores.
func seedRequest(d *q.Definition) *eprov1.CreateQuestionnaireRequest {
	pb := contract.Questionnaire(d)
	return &eprov1.CreateQuestionnaireRequest{
		IdempotencyKey: "seed-questionnaire-" + d.Name + "-" + d.Version,
		Url:            pb.GetUrl(), Version: pb.GetVersion(), Name: pb.GetName(), Title: pb.GetTitle(), Code: pb.GetCode(),
		Status: eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE, Description: pb.GetDescription(),
		Language: pb.GetLanguage(), Copyright: pb.GetCopyright(), Items: pb.GetItems(),
		ScoringRules: pb.GetScoringRules(), AlertRules: pb.GetAlertRules(), ShowScoresToPatient: true,
	}
}

// durationEnv reads a duration setting such as "36h" from the environment.
func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: want a duration such as 24h, got %q", name, v)
	}
	return d, nil
}
