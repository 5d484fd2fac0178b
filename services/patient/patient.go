// Package patient is the patient service: identities and the PII vault,
// onboarding without enumeration, accounts and sessions, token issuing, and the
// service's tamper-evident audit trail. It implements trialhub.patient.v1
// (AuthService, PatientService, AuditService) on the platform kit.
//
// Name, national ID and mobile are sealed per field with AES-256-GCM under data
// keys wrapped by the master key (internal/vault) and found by keyed blind
// indexes; passwords are argon2id hashes (internal/password); refresh tokens and
// one-time codes are stored only hashed. Every action is audited with m.Audit in
// the action's own transaction.
package patient

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/riverqueue/river"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

//go:embed migrations
var migrations embed.FS

// Name is the service's name in the kit (data/patient.db in the dev stack).
const Name = "patient"

// Dependencies this service declares: the trial service (enrollments, for
// investigators' identity reads) and the SMS vendor.
const (
	TrialDependency = "trial"
	SMSDependency   = "sms-vendor"
)

// Service implements the three handlers of trialhub.patient.v1.
type Service struct {
	patientv1connect.UnimplementedAuthServiceHandler
	patientv1connect.UnimplementedPatientServiceHandler
	patientv1connect.UnimplementedAuditServiceHandler

	cfg    Config
	db     *db.DB
	ent    *ent.Client
	jobs   *jobs.Queue
	audit  *audit.Log
	idem   *idempotency.Store
	log    *slog.Logger
	keys   *Keys
	pii    *pii
	trials trialv1connect.TrialServiceClient
	now    func() time.Time
	met    *metrics
}

type options struct {
	cfg    *Config
	keys   *Keys
	lookup func(string) (string, bool)
}

// Option configures Platform.
type Option func(*options)

// WithConfig sets the configuration instead of reading it from the environment
// (tests).
func WithConfig(c Config) Option { return func(o *options) { o.cfg = &c } }

// WithKeys binds k to the service's signing keys at mount, so the process's
// verifier (auth.NewVerifier(k, issuer)), its outbound SERVICE tokens
// (k.TokenSource) and the dev stack's seed tokens (k.Mint) use them.
func WithKeys(k *Keys) Option { return func(o *options) { o.keys = k } }

// WithEnv reads the configuration through lookup instead of os.LookupEnv.
func WithEnv(lookup func(string) (string, bool)) Option {
	return func(o *options) { o.lookup = lookup }
}

// Platform returns the patient service as the kit mounts it. Without WithConfig
// it reads ConfigFromEnv at mount and refuses to start without a master key.
func Platform(opts ...Option) platform.Service {
	o := options{lookup: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	if o.keys == nil {
		o.keys = NewKeys()
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return platform.Service{
		Name:       Name,
		Migrations: sub,
		Needs: []client.Dependency{
			client.Service(TrialDependency, ""),
			client.Vendor(SMSDependency, ""),
		},
		Mount: func(ctx context.Context, m *platform.Mount) error { return mount(ctx, m, o) },
		Seed:  seed,
	}
}

func mount(ctx context.Context, m *platform.Mount, o options) error {
	var cfg Config
	var err error
	if o.cfg != nil {
		cfg = *o.cfg
	} else if cfg, err = ConfigFromEnv(o.lookup); err != nil {
		return err
	}
	if cfg, err = cfg.withDefaults(); err != nil {
		return err
	}
	vaultKeys, err := loadPII(ctx, m.DB, cfg)
	if err != nil {
		return err
	}
	if err := o.keys.bind(ctx, m.DB, cfg); err != nil {
		return err
	}
	met, err := newMetrics(m.Metrics)
	if err != nil {
		return err
	}
	s := &Service{
		met: met, cfg: cfg, db: m.DB, ent: ent.NewClient(ent.Driver(m.DB.Driver())), jobs: m.Jobs,
		audit: m.Audit, idem: m.Idempotency, log: m.Log, keys: o.keys, pii: vaultKeys,
		trials: trialv1connect.NewTrialServiceClient(m.Client(TrialDependency)),
		now:    func() time.Time { return time.Now().UTC() },
	}
	patientv1connect.RegisterAuthServiceHandler(m.RPC(), s)
	patientv1connect.RegisterPatientServiceHandler(m.RPC(), s)
	patientv1connect.RegisterAuditServiceHandler(m.RPC(), s)
	rotation, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); o.keys.rotateWhenDue(rotation, cfg.KeyRotation, m.Audit, m.Log) }()
	m.OnStop(func() { stop(); <-done })
	m.Handle("GET /.well-known/jwks.json", http.HandlerFunc(o.keys.serveJWKS))
	sms := NewSMSSender(m.HTTP(SMSDependency), m.Log)
	sms.base = cfg.SMSURL
	river.AddWorker(m.Workers, &smsWorker{s: s, sender: sms})
	return nil
}

// tx runs fn in one transaction with an ent client on it.
func (s *Service) tx(ctx context.Context, fn func(ctx context.Context, tx *db.Tx, c *ent.Client) error) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		return fn(ctx, tx, entTx(tx))
	})
}

// Roles and actors used throughout.
var (
	serviceRole  = authzv1.Role_ROLE_SERVICE
	serviceActor = audit.Actor{ID: Name, Role: "ROLE_SERVICE", Kind: audit.ActorService}
)

// errorf is a Connect error with a message that carries no personal data.
func errorf(code connect.Code, format string, args ...any) error {
	return connect.NewError(code, fmt.Sprintf(format, args...))
}

// entTx is an ent client inside the kit's transaction tx.
func entTx(tx *db.Tx) *ent.Client { return ent.NewClient(ent.Driver(tx.Driver())) }
