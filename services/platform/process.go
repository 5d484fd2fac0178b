package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/logs"
	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// Process runs one or more services on one server and port: the dev stack runs
// them all, a standalone binary one, platformtest one per test. Serve does what
// both share: databases, migrations, mounting, workers, serving, seeding, and an
// orderly stop.
type Process struct {
	// Name names the server in logs ("trialhub" for the dev stack).
	Name string
	// Services are mounted in order; seeds run in the same order.
	Services []Service
	// DSN returns the database DSN of a service (postgres://... or sqlite:path).
	DSN func(service string) string
	// DBOptions configure every service's database (the PostgreSQL driver, pool
	// sizes).
	DBOptions []db.Option
	// Verifier checks access tokens. Without one only public methods answer.
	Verifier TokenVerifier
	// Tokens returns the token source a service presents on its outbound calls.
	Tokens func(service string) auth.TokenSource
	// Dependency completes a declared dependency from configuration (its URL, its
	// settings). Default: the declaration as it is.
	Dependency func(service string, dep client.Dependency) (client.Dependency, error)
	// ServerOptions configure the server (CORS, limits, middleware, logger is set
	// from Log).
	ServerOptions []Option
	// Routes are plain HTTP routes beside the RPC routes (the JWKS document, the
	// web app), by ServeMux pattern.
	Routes map[string]http.Handler
	// ClientOptions are added to every dependency client (interceptors).
	ClientOptions []client.Option
	// JobOptions are added to every service's job queue.
	JobOptions []jobs.Option
	// TelemetryOptions configure the process's tracing and metrics (an in-memory
	// exporter in tests). Every process traces its calls, jobs and the calls it
	// makes, exports spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and
	// serves Prometheus metrics at GET /metrics on its port.
	TelemetryOptions []telemetry.Option
	// Log is the process logger. Default JSON on stderr through the redaction
	// layer (logs.NewHandler), at Level.
	Log *slog.Logger
	// Level is the level Log logs at, served and changed at LogLevelPath by an
	// ADMIN. When nil and Log is nil, the default logger gets a level of its own,
	// from TRIALHUB_LOG_LEVEL (default info). When nil and Log is set, the level
	// cannot be changed and LogLevelPath is not served.
	Level *slog.LevelVar
	// SlowCall is the duration from which a call is logged at WARN (see
	// WithSlowCall). Zero means TRIALHUB_SLOW_CALL when set (the dev stack), else
	// DefaultSlowCall; negative turns it off.
	SlowCall time.Duration
	// Seed, when set, runs every service's Seed once the server answers (dev stack).
	Seed *SeedConfig
	// Ready, when set, is called with the bound address once the server answers and
	// the seeds (if any) ran.
	Ready func(addr string)
}

// SeedConfig is how the dev stack seeds demo data.
type SeedConfig struct {
	// Mint signs an access token for a caller.
	Mint func(auth.Caller) (string, error)
	// Out receives what seeds print for a newcomer. Default io.Discard.
	Out io.Writer
}

// hosted is one mounted service and what must be stopped with it.
type hosted struct {
	mount *Mount
	queue *jobs.Queue
}

// Serve mounts the services and serves them on ln until ctx is done, then stops in
// order: the server drains (health NOT_SERVING first), then the workers stop, then
// the databases close. A service that fails to open, migrate or mount stops the
// process before it serves anything.
func (p Process) Serve(ctx context.Context, ln net.Listener) (err error) {
	log, level := p.Log, p.Level
	if log == nil {
		if level == nil {
			level = new(slog.LevelVar)
			if name, ok := os.LookupEnv("TRIALHUB_LOG_LEVEL"); ok {
				l, err := logs.ParseLevel(name)
				if err != nil {
					ln.Close()
					return fmt.Errorf("TRIALHUB_LOG_LEVEL: %w", err)
				}
				level.Set(l)
			}
		}
		// JSON on stderr, through the redaction layer: attributes named like or
		// looking like secrets and personal data never reach the output.
		log = slog.New(logs.NewHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	}
	tel, err := telemetry.Setup(ctx, p.Name, p.TelemetryOptions...)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(flush))
	}()
	slow := p.SlowCall
	if v, ok := os.LookupEnv("TRIALHUB_SLOW_CALL"); ok && slow == 0 {
		if slow, err = time.ParseDuration(v); err != nil {
			ln.Close()
			return fmt.Errorf("TRIALHUB_SLOW_CALL: %w", err)
		}
	}
	switch {
	case slow == 0:
		slow = DefaultSlowCall
	case slow < 0:
		slow = 0
	}
	srv := NewServer(p.Name, append([]Option{WithLogger(log), WithVerifier(p.Verifier), WithTelemetry(tel.ServerInterceptor()), WithSlowCall(slow)}, p.ServerOptions...)...)
	srv.Handle("GET /metrics", tel.MetricsHandler())
	if level != nil {
		srv.Handle(LogLevelPath, logLevelHandler(p.Verifier, level, log))
	}
	if err := tel.RegisterShedding(func() telemetry.Shedding { return telemetry.Shedding(srv.Shedding()) }); err != nil {
		ln.Close()
		return err
	}
	p.ClientOptions = append([]client.Option{client.WithInterceptors(tel.ClientInterceptor())}, p.ClientOptions...)
	p.DBOptions = append([]db.Option{db.WithTxObserver(tel.TxSpans())}, p.DBOptions...)
	p.JobOptions = append([]jobs.Option{jobs.WithPlugins(tel.RiverMiddleware())}, p.JobOptions...)
	for pattern, h := range p.Routes {
		srv.Handle(pattern, h)
	}
	var running []*hosted
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			err = errors.Join(err, running[i].stop(context.WithoutCancel(ctx)))
		}
	}()
	for _, svc := range p.Services {
		st := tel.ForService(svc.Name)
		h, err := p.mount(ctx, srv, svc, log, st)
		if err != nil {
			ln.Close()
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		running = append(running, h)
		if err := errors.Join(st.RegisterRiverJobs(h.mount.DB), st.RegisterAuditEvents(h.mount.DB)); err != nil {
			ln.Close()
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
	}
	for _, h := range running {
		if err := h.queue.Start(ctx); err != nil {
			ln.Close()
			return fmt.Errorf("service %s: start workers: %w", h.mount.Name, err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	if p.Seed != nil {
		if err := p.seed(ctx, ln.Addr().String(), log); err != nil {
			log.Error("seeding the dev stack failed", "error", err.Error())
		}
	}
	if p.Ready != nil {
		p.Ready(ln.Addr().String())
	}
	return <-served
}

// mount opens, migrates and mounts one service; tel is the process's telemetry
// for this service (its collectors carry a service label).
func (p Process) mount(ctx context.Context, srv *Server, svc Service, log *slog.Logger, tel *telemetry.Telemetry) (h *hosted, err error) {
	if svc.Name == "" || svc.Mount == nil {
		return nil, errors.New("a service needs a Name and a Mount")
	}
	if p.DSN == nil {
		return nil, errors.New("no database configured")
	}
	dsn := p.DSN(svc.Name)
	database, err := db.Open(ctx, dsn, p.DBOptions...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			database.Close()
		}
	}()
	workers := river.NewWorkers()
	jobOpts := []jobs.Option{jobs.WithLogger(log.With("service", svc.Name, "component", "river"))}
	if database.Dialect() == dialect.Postgres {
		// LISTEN/NOTIFY starts a committed job in milliseconds instead of at the
		// next poll (see the jobs package's figures).
		jobOpts = append(jobOpts, jobs.WithListener(dsn))
	}
	queue, err := jobs.New(database, workers, append(jobOpts, p.JobOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	if err := Migrate(ctx, database, queue, svc); err != nil {
		return nil, err
	}
	deps := make(map[string]client.Dependency, len(svc.Needs))
	for _, dep := range svc.Needs {
		if p.Dependency != nil {
			if dep, err = p.Dependency(svc.Name, dep); err != nil {
				return nil, err
			}
		}
		deps[dep.Name] = dep
	}
	var tokens auth.TokenSource
	if p.Tokens != nil {
		tokens = p.Tokens(svc.Name)
	}
	svcLog := log.With("service", svc.Name)
	breakers := client.NewBreakerMetrics()
	if err := tel.Register(breakers); err != nil {
		return nil, err
	}
	m := &Mount{
		Name:        svc.Name,
		DB:          database,
		Jobs:        queue,
		Workers:     workers,
		Audit:       audit.New(),
		Idempotency: idempotency.New(),
		Log:         svcLog,
		Telemetry:   tel,
		Metrics:     tel.Registerer(),
		server:      srv,
		deps:        deps,
		clients: clientFactory{tokens: tokens, log: svcLog, vendor: tel.Transport,
			opts: append([]client.Option{client.WithBreakerMetrics(breakers)}, p.ClientOptions...)},
		rpc:   map[string]*connect.Client{},
		plain: map[string]*http.Client{},
	}
	if err := svc.Mount(ctx, m); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	srv.Own(svc.Name)
	if err := addKitJobs(m); err != nil {
		return nil, err
	}
	return &hosted{mount: m, queue: queue}, nil
}

// Migrate applies, in order, River's migrations, the kit's tables (audit trail,
// idempotency keys) and the service's own to database.
func Migrate(ctx context.Context, database *db.DB, queue *jobs.Queue, svc Service) error {
	if err := queue.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate the job queue: %w", err)
	}
	sources := []migrate.Source{
		{Name: "audit", FS: audit.Migrations},
		{Name: "idempotency", FS: idempotency.Migrations},
	}
	if svc.Migrations != nil {
		sources = append(sources, migrate.Source{Name: svc.Name, FS: svc.Migrations})
	}
	if err := migrate.Apply(ctx, database, sources...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// jobStopWait is how long a stopping process lets running jobs finish before it
// cancels them; a cancelled job is retried by River, so nothing is lost.
const jobStopWait = 10 * time.Second

// stop stops the service's workers, runs its cleanups and closes its database.
func (h *hosted) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jobStopWait)
	defer cancel()
	err := h.queue.Stop(ctx)
	h.mount.mu.Lock()
	cleanup := h.mount.cleanup
	h.mount.mu.Unlock()
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
	return errors.Join(err, h.mount.DB.Close())
}

// seed runs every service's Seed against the serving stack.
func (p Process) seed(ctx context.Context, addr string, log *slog.Logger) error {
	out := p.Seed.Out
	if out == nil {
		out = io.Discard
	}
	s := &Seeder{BaseURL: baseURL(addr), Out: out, Log: log, mint: p.Seed.Mint, values: map[string]string{}}
	var errs []error
	for _, svc := range p.Services {
		if svc.Seed == nil {
			continue
		}
		if err := svc.Seed(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("seed %s: %w", svc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// baseURL turns a listener address into a URL a client on this host can call.
func baseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
