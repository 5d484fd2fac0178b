// Package trial is the trial service: trials and their life cycle, sites,
// versioned visit schedules, enrollments, each subject's visit plan with
// windows computed in the site's time zone, the worklist, and the service's own
// audit trail. It implements trialhub.trial.v1.TrialService on the platform kit
// and stores subject_uuid only, never personal data.
//
// Handlers translate between the contract and the domain (internal/plan) and
// map errors to Connect codes at the edge; every change is written with its
// audit event and idempotency record in one transaction.
package trial

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/riverqueue/river"
	"google.golang.org/protobuf/proto"

	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/trial/ent"
)

//go:embed migrations
var migrations embed.FS

// Service implements trialhub.trial.v1.TrialService.
type Service struct {
	db       *db.DB
	ent      *ent.Client // reads outside a transaction
	audit    *audit.Log
	jobs     *jobs.Queue
	idem     *idempotency.Store
	patients patientv1connect.PatientServiceClient
	now      func() time.Time
}

var _ trialv1connect.TrialServiceHandler = (*Service)(nil)

// Option configures the service.
type Option func(*Service)

// WithClock sets the clock that decides "now" for visit status, enrollment
// and withdrawal dates; the default is time.Now. Tests move it to a window's
// edges.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Platform returns the trial service as the kit mounts it: its migrations, its
// dependency on the patient service (GetSubjectStatus before enrolling), its
// handlers and its dev-stack seed.
func Platform(opts ...Option) platform.Service {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return platform.Service{
		Name:       "trial",
		Migrations: sub,
		Needs:      []client.Dependency{client.Service("patient", "")},
		Mount: func(_ context.Context, m *platform.Mount) error {
			s := &Service{
				db:       m.DB,
				ent:      ent.NewClient(ent.Driver(m.DB.Driver())),
				audit:    m.Audit,
				jobs:     m.Jobs,
				idem:     m.Idempotency,
				patients: patientv1connect.NewPatientServiceClient(m.Client("patient")),
				now:      time.Now,
			}
			for _, o := range opts {
				o(s)
			}
			trialv1connect.RegisterTrialServiceHandler(m.RPC(), s)
			river.AddWorker(m.Workers, &windowClosedWorker{s: s})
			return nil
		},
		Seed: seed,
	}
}

// write runs fn as the idempotent write of req under the client's key: fn gets
// the transaction (for audit events) and an ent client on it; a failure is
// mapped to its Connect code once, here, naming only what failed.
func write[Res proto.Message](ctx context.Context, s *Service, key string, req proto.Message, what string,
	fn func(ctx context.Context, tx *db.Tx, c *ent.Client) (Res, error)) (Res, error) {
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, key), req,
		func(ctx context.Context, tx *db.Tx) (Res, error) {
			return fn(ctx, tx, entOn(tx))
		})
	if err != nil {
		var zero Res
		return zero, db.ConnectError(err, what)
	}
	return res, nil
}

// invalid is INVALID_ARGUMENT naming the failing field.
func invalid(field, format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Sprintf(field+": "+format, args...))
}

// precondition is FAILED_PRECONDITION naming the failing field.
func precondition(field, format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Sprintf(field+": "+format, args...))
}

// notFound is NOT_FOUND for a record the caller cannot see or that does not
// exist (the two are answered alike, so existence does not leak).
func notFound(what string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Sprintf("%s not found", what))
}

func caller(ctx context.Context) auth.Caller {
	c, _ := auth.CallerFrom(ctx)
	return c
}

// stamp is the server time written to rows (created_at, updated_at, the
// worklist cursor): the wall clock, not the injectable one that decides visit
// status, so a cursor keeps moving forward whatever "now" a test sets. UTC, to
// the microsecond, as both databases keep it (page cursors compare it exactly).
func (s *Service) stamp() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// entOn is an ent client inside the kit's transaction tx.
func entOn(tx *db.Tx) *ent.Client { return ent.NewClient(ent.Driver(tx.Driver())) }
