// Package platformtest runs a TrialHub service for its tests the way it runs in
// production: mounted by the kit (platform.Process) on a real loopback listener
// with the whole interceptor chain, its own fresh PostgreSQL database (or SQLite)
// with every migration applied, River workers running, and tokens for any role and
// scope.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestEnroll(t *testing.T) {
//		env := platformtest.Start(t, trial.Service())
//		c := trialv1connect.NewTrialServiceClient(env.Client(t, platformtest.Investigator("site-1")))
//		...
//	}
package platformtest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// Issuer is the iss claim of the tokens a test environment mints.
const Issuer = "platformtest"

// Env is one running service process.
type Env struct {
	// URL is the process's base URL, http://127.0.0.1:port.
	URL string
	// DSN is the service's database.
	DSN string

	signer *auth.Signer
}

type options struct {
	dsn      string
	sqlite   bool
	log      *slog.Logger
	level    *slog.LevelVar
	deps     map[string]string
	jobs     []jobs.Option
	server   []platform.Option
	db       []db.Option
	tel      []telemetry.Option
	signer   *auth.Signer
	services []platform.Service
}

// Option configures Start.
type Option func(*options)

// WithDSN runs the service on an existing database (a second replica on the same
// database, for example). Default: a fresh PostgreSQL database from pgtest.
func WithDSN(dsn string) Option { return func(o *options) { o.dsn = dsn } }

// WithSQLite runs the service on a new SQLite file, as the dev stack does.
func WithSQLite() Option { return func(o *options) { o.sqlite = true } }

// WithLogger receives the process's logs. Default: discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithLevel is the level of WithLogger's logger, served at platform.LogLevelPath
// for an ADMIN to change. Default: none (the path is not served).
func WithLevel(l *slog.LevelVar) Option { return func(o *options) { o.level = l } }

// WithDependency points a dependency the service declared at url.
func WithDependency(name, url string) Option {
	return func(o *options) { o.deps[name] = url }
}

// WithJobOptions configures the service's job queue (fast retries in tests).
func WithJobOptions(opts ...jobs.Option) Option {
	return func(o *options) { o.jobs = append(o.jobs, opts...) }
}

// WithServerOptions configures the server.
func WithServerOptions(opts ...platform.Option) Option {
	return func(o *options) { o.server = append(o.server, opts...) }
}

// All combines options into one (a test table's "backend" column).
func All(opts ...Option) Option {
	return func(o *options) {
		for _, opt := range opts {
			opt(o)
		}
	}
}

// WithDBOptions configures the service's database (say, db.WithPostgresDriver(db.LibPQ)).
func WithDBOptions(opts ...db.Option) Option {
	return func(o *options) { o.db = append(o.db, opts...) }
}

// WithTelemetryOptions configures tracing and metrics (telemetry.WithExporter with
// an in-memory exporter to assert spans).
func WithTelemetryOptions(opts ...telemetry.Option) Option {
	return func(o *options) { o.tel = append(o.tel, opts...) }
}

// WithSigner signs tokens with s, so that two environments trust each other's
// tokens. Default: a new key per Start.
func WithSigner(s *auth.Signer) Option { return func(o *options) { o.signer = s } }

// WithServices mounts more services in the same process (after svc).
func WithServices(svcs ...platform.Service) Option {
	return func(o *options) { o.services = append(o.services, svcs...) }
}

// Start runs svc until the test ends and returns once it answers.
func Start(t testing.TB, svc platform.Service, opts ...Option) *Env {
	t.Helper()
	o := options{log: slog.New(slog.DiscardHandler), deps: map[string]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.dsn != "":
	case o.sqlite:
		o.dsn = "sqlite:" + filepath.Join(t.TempDir(), svc.Name+".db")
	default:
		o.dsn = pgtest.New(t)
	}
	if o.signer == nil {
		o.signer = NewSigner(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{URL: "http://" + ln.Addr().String(), DSN: o.dsn, signer: o.signer}
	ready := make(chan struct{})
	p := platform.Process{
		Name:     svc.Name,
		Services: append([]platform.Service{svc}, o.services...),
		DSN:      func(string) string { return o.dsn },
		Verifier: auth.NewVerifier(o.signer.Keys(), Issuer),
		Tokens: func(service string) auth.TokenSource {
			return auth.NewSignerTokens(o.signer, auth.Caller{Subject: service, Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
		},
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			if url, ok := o.deps[dep.Name]; ok {
				dep.BaseURL = url
			}
			return dep, nil
		},
		// Tests stop at once: nothing balances load in front of them.
		ServerOptions:    append([]platform.Option{platform.WithDrainDelay(0)}, o.server...),
		DBOptions:        o.db,
		TelemetryOptions: o.tel,
		JobOptions:       o.jobs,
		Log:              o.log,
		Level:            o.level,
		Ready:            func(string) { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("service %s did not start: %v", svc.Name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service %s stopped with: %v", svc.Name, err)
		}
	})
	return env
}

// NewSigner returns a signer with a new key for the test environment's issuer.
func NewSigner(t testing.TB) *auth.Signer {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(key, Issuer)
}

// Token mints an access token for caller, valid for an hour.
func (e *Env) Token(t testing.TB, caller auth.Caller) string {
	t.Helper()
	token, _, err := e.signer.Sign(caller, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Client returns a connect client to the service that calls as caller, over gRPC
// (HTTP/2 without TLS), to hand to a generated NewXServiceClient. Retries are off,
// so a test sees each answer as it was sent.
func (e *Env) Client(t testing.TB, caller auth.Caller) *connect.Client {
	return e.ClientOver(t, caller, client.ProtocolGRPC)
}

// ClientOver is Client over another protocol (client.ProtocolConnect for what
// browsers and curl send, client.ProtocolGRPCWeb).
func (e *Env) ClientOver(t testing.TB, caller auth.Caller, protocol client.Protocol) *connect.Client {
	t.Helper()
	dep := client.Service("test", e.URL)
	dep.Protocol = protocol
	dep.MaxAttempts = 1
	dep.Timeout = 30 * time.Second
	dep.Breaker.Disabled = true
	return client.New(dep, client.WithTokens(auth.StaticToken(e.Token(t, caller))), client.WithLogger(slog.New(slog.DiscardHandler)))
}

// DB opens the service's database for the test to inspect (closed at the end).
func (e *Env) DB(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Admin is an ADMIN caller.
func Admin() auth.Caller { return auth.Caller{Subject: "test-admin", Role: authzv1.Role_ROLE_ADMIN} }

// Investigator is an INVESTIGATOR caller scoped to sites.
func Investigator(sites ...string) auth.Caller {
	return auth.Caller{Subject: "test-investigator", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: sites}
}

// Analyst is an ANALYST caller.
func Analyst() auth.Caller {
	return auth.Caller{Subject: "test-analyst", Role: authzv1.Role_ROLE_ANALYST}
}

// Patient is a PATIENT caller with a new subject_uuid.
func Patient() auth.Caller {
	return auth.Caller{Subject: uuid.NewString(), Role: authzv1.Role_ROLE_PATIENT}
}

// Service is a SERVICE caller named name.
func Service(name string) auth.Caller {
	return auth.Caller{Subject: name, Role: authzv1.Role_ROLE_SERVICE}
}
