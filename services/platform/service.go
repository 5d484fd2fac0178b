package platform

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"

	"connectrpc.com/connect/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// Service is a TrialHub service as the kit mounts it, in the dev stack (every
// service in one process) and alone (services/<name>/cmd/<name>) alike:
//
//	func Service() platform.Service {
//		return platform.Service{
//			Name:       "trial",
//			Migrations: migrations.FS, // postgres/NNNN_*.sql, sqlite/NNNN_*.sql
//			Needs:      []client.Dependency{client.Service("patient", "")},
//			Mount:      mount, // handlers on m.RPC(), workers on m.Workers
//			Seed:       seed,  // dev-stack demo data, through the API
//		}
//	}
//
// The kit opens the service's database, applies the kit's migrations (River's
// queue, the audit trail, idempotency keys) and then the service's own, calls
// Mount, starts the River workers, serves, and on shutdown drains the server
// before it stops the workers and closes the database.
type Service struct {
	// Name names the service in logs, configuration and the dev stack's data folder
	// (data/<name>.db). Required.
	Name string
	// Migrations holds the service's versioned SQL, one folder per dialect
	// (postgres/, sqlite/) of NNNN_name.sql files; nil for a service without tables.
	Migrations fs.FS
	// Needs lists the services and vendors this one calls, with their default
	// settings; configuration supplies the URLs and may override the rest. Mount
	// gets a client for each with Mount.Client and Mount.HTTP.
	Needs []client.Dependency
	// Mount builds the service on its resources: it registers its handlers on
	// m.RPC() and its River workers on m.Workers. Required.
	Mount func(ctx context.Context, m *Mount) error
	// Seed adds the dev stack's demo data once every service serves, through
	// in-process clients that run the whole interceptor chain. It must be safe to
	// run on every start (skip what exists, or use idempotency keys). Optional;
	// only the dev stack calls it.
	Seed func(ctx context.Context, s *Seeder) error
}

// Mount is what a Service is built with: its own database, job queue, audit trail
// and idempotency store, the server to register handlers on, and clients for the
// dependencies it declared.
type Mount struct {
	// Name is the service's name.
	Name string
	// DB is the service's database, already migrated.
	DB *db.DB
	// Jobs inserts River jobs (InsertTx, in the transaction of the data that caused
	// them). It works once the process has started, before the first request.
	Jobs *jobs.Queue
	// Workers is where the service adds its River workers (river.AddWorker).
	Workers *river.Workers
	// Audit is the service's hash-chained audit trail, in DB.
	Audit *audit.Log
	// Idempotency stores the answers of retried writes, in DB.
	Idempotency *idempotency.Store
	// Log is the process logger, with the service's name attached.
	Log *slog.Logger
	// Telemetry is the process's tracing and metrics, for the service's own spans
	// (Telemetry.InTx, Telemetry.Transport for a vendor, Tracer).
	Telemetry *telemetry.Telemetry
	// Metrics is where the service registers its business metrics
	// (prometheus.NewCounterVec, then Metrics.MustRegister); they are served at
	// GET /metrics with a service label. Names start with the service's name
	// (epro_submissions_total), labels are codes and ids, never personal data.
	Metrics prometheus.Registerer

	server  *Server
	deps    map[string]client.Dependency
	clients clientFactory

	mu      sync.Mutex
	rpc     map[string]*connect.Client
	plain   map[string]*http.Client
	cleanup []func()
}

// RPC is the connect server to register the service's generated handlers on.
func (m *Mount) RPC() *connect.Server { return m.server.RPC() }

// Handle adds a plain HTTP route beside the RPC routes (a JWKS document, a webhook).
func (m *Mount) Handle(pattern string, h http.Handler) { m.server.Handle(pattern, h) }

// Health is the process's health service.
func (m *Mount) Health() *Health { return m.server.Health() }

// Client returns the connect client for a dependency declared in Service.Needs, to
// hand to a generated NewXServiceClient. It carries the dependency's timeout, safe
// retries, breaker and this service's SERVICE token; one per dependency per process.
func (m *Mount) Client(name string) *connect.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.rpc[name]; ok {
		return c
	}
	c := m.clients.rpc(m.dependency(name))
	m.rpc[name] = c
	return c
}

// HTTP returns a plain HTTP client for a vendor declared in Service.Needs (the SMS
// or push vendor), with the dependency's timeout, safe retries and breaker.
func (m *Mount) HTTP(name string) *http.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.plain[name]; ok {
		return c
	}
	c := m.clients.http(m.dependency(name))
	m.plain[name] = c
	return c
}

// OnStop registers fn to run when the process stops, after the server drained and
// the workers stopped, before the database closes.
func (m *Mount) OnStop(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cleanup = append(m.cleanup, fn)
}

func (m *Mount) dependency(name string) client.Dependency {
	dep, ok := m.deps[name]
	if !ok {
		// A programming error caught at start: Mount asked for what Needs lacks.
		panic(fmt.Sprintf("service %s: dependency %q is not declared in Service.Needs", m.Name, name))
	}
	return dep
}

// clientFactory builds the clients a process's services call their dependencies
// with, so the dev stack and a standalone process differ only in where calls go and
// which token they carry.
type clientFactory struct {
	tokens auth.TokenSource
	log    *slog.Logger
	opts   []client.Option
	// vendor wraps a vendor client's transport (a client span per request, all
	// attempts included); nil leaves it as it is.
	vendor func(http.RoundTripper) http.RoundTripper
}

func (f clientFactory) rpc(dep client.Dependency) *connect.Client {
	return client.New(dep, append([]client.Option{client.WithTokens(f.tokens), client.WithLogger(f.log)}, f.opts...)...)
}

func (f clientFactory) http(dep client.Dependency) *http.Client {
	c := client.HTTP(dep, append([]client.Option{client.WithLogger(f.log)}, f.opts...)...)
	if f.vendor != nil {
		c.Transport = f.vendor(c.Transport)
	}
	return c
}

// Seeder is what a Service's Seed gets in the dev stack: clients to the running
// stack (over the network, through the whole interceptor chain) with a token for
// any caller, a place to print logins, and values earlier seeds left for later
// ones (the demo patient's subject_uuid for the trial service's enrollment).
type Seeder struct {
	// BaseURL is the stack's address, http://host:port.
	BaseURL string
	// Out is where a seed prints what a newcomer needs (logins, ids).
	Out io.Writer
	// Log is the stack's logger.
	Log *slog.Logger

	mint   func(auth.Caller) (string, error)
	values map[string]string
}

// Client returns a connect client to the stack that calls as caller (a fresh
// token per client), using the Connect protocol so seeds exercise what browsers and
// curl users send.
func (s *Seeder) Client(caller auth.Caller) (*connect.Client, error) {
	token, err := s.mint(caller)
	if err != nil {
		return nil, fmt.Errorf("seed token for %s: %w", caller.Subject, err)
	}
	dep := client.Service("seed", s.BaseURL)
	dep.Protocol = client.ProtocolConnect
	dep.Timeout = 30e9 // seeding on a cold SQLite file may be slow; 30 s
	return client.New(dep, client.WithTokens(auth.StaticToken(token))), nil
}

// Token mints an access token for caller, to print as a login.
func (s *Seeder) Token(caller auth.Caller) (string, error) { return s.mint(caller) }

// Set leaves a value for seeds that run later.
func (s *Seeder) Set(key, value string) { s.values[key] = value }

// Get returns a value an earlier seed set, "" if none did.
func (s *Seeder) Get(key string) string { return s.values[key] }
