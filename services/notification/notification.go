// Package notification is the notification service: device registrations (push
// tokens live only here), reminders and safety alerts queued for delivery, and
// their delivery to the push vendor on River workers. It implements
// trialhub.notification.v1.NotificationService on the platform kit, with ent
// over PostgreSQL or SQLite.
//
// SendNotification stores the notification and its delivery job in one
// transaction and answers at once; a slow or dead vendor never reaches a caller.
// Delivery goes through the kit's client.HTTP (per-call timeout, retries with
// backoff and jitter, Retry-After, circuit breaker) under a bulkhead that bounds
// the calls in flight, and a job the vendor could not take is rescheduled, never
// dropped, until its retry budget is spent (DEAD, re-queueable by an
// administrator). Safety alerts escalate on River scheduled jobs until someone
// acknowledges them; reminders are planned from the trial service's worklist.
package notification

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

//go:embed migrations
var migrations embed.FS

// Name is the service's name in the kit. It is also the subject of its SERVICE
// token, which the patient service's ListSiteStaff admits alone.
const Name = "notification"

// Dependencies this service declares: the patient service (a site's staff, asked
// at send time), the trial service (a trial's sites, the worklist reminders are
// planned from) and the push vendor.
const (
	PatientDependency = "patient"
	TrialDependency   = "trial"
	PushDependency    = "push-vendor"
)

// DeliveryQueue is the River queue delivery jobs run on; its worker count is
// Config.Workers.
const DeliveryQueue = "notification_delivery"

// Service implements trialhub.notification.v1.NotificationService.
type Service struct {
	notificationv1connect.UnimplementedNotificationServiceHandler

	cfg      Config
	db       *db.DB
	ent      *ent.Client
	jobs     *jobs.Queue
	audit    *audit.Log
	idem     *idempotency.Store
	log      *slog.Logger
	now      func() time.Time
	staff    patientv1connect.AuthServiceClient
	patients patientv1connect.PatientServiceClient
	trials   trialv1connect.TrialServiceClient
	vendor   Vendor
	bulkhead chan struct{}
	metrics  *metrics
	retries  retryPlan
}

// Platform returns the notification service as the kit mounts it. Settings come
// from the environment (ConfigFromEnv), then opts.
func Platform(opts ...Option) platform.Service {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return platform.Service{
		Name:       Name,
		Migrations: sub,
		Needs: []client.Dependency{
			client.Service(PatientDependency, ""),
			client.Service(TrialDependency, ""),
			client.Vendor(PushDependency, ""),
		},
		Mount: func(ctx context.Context, m *platform.Mount) error {
			cfg, err := ConfigFromEnv(lookupEnv)
			if err != nil {
				return err
			}
			for _, o := range opts {
				o(&cfg)
			}
			if cfg, err = cfg.withDefaults(); err != nil {
				return err
			}
			return mount(ctx, m, cfg)
		},
		Seed: seed,
	}
}

func mount(_ context.Context, m *platform.Mount, cfg Config) error {
	s := &Service{
		cfg: cfg, db: m.DB, ent: ent.NewClient(ent.Driver(m.DB.Driver())), jobs: m.Jobs, audit: m.Audit,
		idem: m.Idempotency, log: m.Log, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		staff:    patientv1connect.NewAuthServiceClient(m.Client(PatientDependency)),
		patients: patientv1connect.NewPatientServiceClient(m.Client(PatientDependency)),
		trials:   trialv1connect.NewTrialServiceClient(m.Client(TrialDependency)),
		bulkhead: make(chan struct{}, cfg.VendorConcurrency),
		retries:  newRetryPlan(cfg.RetryBase, cfg.RetryMax),
	}
	if cfg.Vendor != nil {
		s.vendor = cfg.Vendor
	} else {
		s.vendor = NewHTTPVendor(m.HTTP(PushDependency), cfg.PushURL)
	}
	var err error
	if s.metrics, err = newMetrics(m.Metrics, s); err != nil {
		return err
	}
	notificationv1connect.RegisterNotificationServiceHandler(m.RPC(), s)
	river.AddWorker(m.Workers, &deliverWorker{s: s})
	river.AddWorker(m.Workers, &escalateWorker{s: s})
	river.AddWorker(m.Workers, &planRemindersWorker{s: s})
	if err := m.Jobs.Client().Queues().Add(DeliveryQueue, river.QueueConfig{MaxWorkers: cfg.Workers}); err != nil {
		return fmt.Errorf("delivery queue: %w", err)
	}
	river.AddWorker(m.Workers, &reconcileWorker{s: s})
	m.Jobs.Client().PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(cfg.ReconcileEvery),
		func() (river.JobArgs, *river.InsertOpts) { return Reconcile{}, nil }, nil))
	if cfg.PollEvery > 0 {
		m.Jobs.Client().PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(cfg.PollEvery),
			func() (river.JobArgs, *river.InsertOpts) { return PlanReminders{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	return nil
}

// httpDo is what Vendor implementations need of an *http.Client.
type httpDo interface {
	Do(*http.Request) (*http.Response, error)
}
