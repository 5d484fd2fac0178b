// Package telemetry gives a TrialHub process its traces and metrics, once, for
// every service: OpenTelemetry spans on servers, clients, River jobs and
// transactions, with W3C traceparent carried across every RPC and every job, and
// Prometheus metrics on a registry of the process's own (never the global one).
//
// Wiring, for a process that serves one service:
//
//	tel, err := telemetry.Setup(ctx, "trial")              // OTLP only if OTEL_EXPORTER_OTLP_*ENDPOINT is set
//	defer tel.Shutdown(context.Background())               // flushes spans not yet exported
//	platform.WithTelemetry(tel.ServerInterceptor())        // server spans + rpc_server_* metrics
//	client.WithInterceptors(tel.ClientInterceptor())       // client spans + rpc_client_* metrics
//	jobs.WithPlugins(tel.RiverMiddleware())                // a job carries its request's trace
//	mux.Handle("/metrics", tel.MetricsHandler())           // Prometheus text format
//	db.Open(ctx, dsn, db.WithTxObserver(tel.TxSpans()))     // a span per transaction
//	httpClient.Transport = tel.Transport(httpClient.Transport) // a span per vendor request
//
// platform.Process does all of this for every service it mounts.
//
// Services register their business metrics on tel.Registry().
//
// Spans carry no personal data: names are procedures, job kinds and transaction
// names, attributes are codes and ids, and errors are never recorded on spans
// (a database error can quote the row it refused), only an Error status with a
// fixed description.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope is the instrumentation scope of the kit's spans.
const scope = "github.com/trialhub/trialhub/services/platform/telemetry"

// Telemetry is one process's tracing and metrics. Its methods are safe for
// concurrent use. Make it with Setup and stop it with Shutdown.
type Telemetry struct {
	service   string
	tp        trace.TracerProvider
	sdk       *sdktrace.TracerProvider // nil when tracing is disabled
	exporting bool
	prop      propagation.TextMapPropagator
	reg       *prometheus.Registry
	labeled   prometheus.Registerer // where Register* collectors go; reg unless ForService
	rpc       *rpcMetrics
}

// ForService is t for one of several services in one process (the dev stack): the
// collectors registered through it (RegisterRiverJobs, RegisterAuditEvents) carry
// a service label, so each service's database reports its own series. Tracing,
// RPC metrics and the handler are t's.
func (t *Telemetry) ForService(name string) *Telemetry {
	c := *t
	c.labeled = prometheus.WrapRegistererWith(prometheus.Labels{"service": name}, t.reg)
	return &c
}

// registerer is where collectors are registered.
func (t *Telemetry) registerer() prometheus.Registerer {
	if t.labeled != nil {
		return t.labeled
	}
	return t.reg
}

// Option configures Setup.
type Option func(*config)

type config struct {
	exporter  sdktrace.SpanExporter
	ratio     *float64
	getenv    func(string) string
	resAttrs  []attribute.KeyValue
	noRuntime bool
}

// WithExporter sends every ended span to e synchronously, instead of OTLP, such
// as a tracetest.InMemoryExporter in tests. Default: OTLP over HTTP when an
// endpoint is configured, nothing otherwise.
func WithExporter(e sdktrace.SpanExporter) Option { return func(c *config) { c.exporter = e } }

// WithSampleRatio samples root spans with probability r (0 to 1) and follows the
// parent's decision otherwise (parentbased_traceidratio). It overrides
// OTEL_TRACES_SAMPLER. Default: OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// when set, else parentbased_always_on.
func WithSampleRatio(r float64) Option { return func(c *config) { c.ratio = &r } }

// WithResource adds attributes to the resource that describes the process (such as
// deployment.environment.name). service.name is the service given to Setup unless
// OTEL_SERVICE_NAME is set; OTEL_RESOURCE_ATTRIBUTES is honoured.
func WithResource(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.resAttrs = append(c.resAttrs, attrs...) }
}

// WithoutRuntimeMetrics leaves out the Go runtime and process collectors (for
// tests that count series). Default: both registered.
func WithoutRuntimeMetrics() Option { return func(c *config) { c.noRuntime = true } }

// Setup builds the process's telemetry for service.
//
// Traces: a TracerProvider whose spans are exported with OTLP over HTTP
// (otlptracehttp) when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, honouring the other standard
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression, TLS), and
// exported nowhere otherwise: spans are still made, so trace ids reach logs,
// request.Info and the calls and jobs this process makes. OTEL_TRACES_EXPORTER=none
// turns export off and OTEL_SDK_DISABLED=true turns tracing off. Sampling is
// parent-based (see WithSampleRatio). Propagation is W3C trace context only:
// baggage is not propagated, since it could carry what must not leave the process.
//
// Metrics: a new prometheus.Registry with the RPC histograms and, unless
// WithoutRuntimeMetrics, the Go runtime and process collectors.
func Setup(ctx context.Context, service string, opts ...Option) (*Telemetry, error) {
	cfg := config{getenv: os.Getenv}
	for _, o := range opts {
		o(&cfg)
	}
	t := &Telemetry{service: service, prop: propagation.TraceContext{}, reg: prometheus.NewRegistry()}
	if !cfg.noRuntime {
		if err := t.reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("telemetry: go collector: %w", err)
		}
		if err := t.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("telemetry: process collector: %w", err)
		}
	}
	rpc, err := newRPCMetrics(t.reg)
	if err != nil {
		return nil, err
	}
	t.rpc = rpc

	if strings.EqualFold(strings.TrimSpace(cfg.getenv("OTEL_SDK_DISABLED")), "true") && cfg.exporter == nil {
		t.tp = noop.NewTracerProvider()
		return t, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(append([]attribute.KeyValue{attribute.String("service.name", service)}, cfg.resAttrs...)...),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.ratio != nil {
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.ratio))))
	}
	switch {
	case cfg.exporter != nil:
		tpOpts = append(tpOpts, sdktrace.WithSyncer(cfg.exporter))
		t.exporting = true
	case otlpConfigured(cfg.getenv):
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
		t.exporting = true
	}
	t.sdk = sdktrace.NewTracerProvider(tpOpts...)
	t.tp = t.sdk
	return t, nil
}

// otlpConfigured reports whether the environment names an OTLP traces endpoint
// and does not turn the exporter off.
func otlpConfigured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Service is the service name given to Setup.
func (t *Telemetry) Service() string { return t.service }

// Exporting reports whether spans leave the process (an OTLP endpoint or
// WithExporter).
func (t *Telemetry) Exporting() bool { return t.exporting }

// TracerProvider is the process's tracer provider, for libraries that take one.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Tracer is a tracer for the named instrumentation scope (the service's package),
// for spans of its own: vendor calls, scoring, exports.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.tp.Tracer(name) }

// Propagator is the W3C trace-context propagator the kit uses on RPCs and jobs.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Registry is the process's Prometheus registry: services register their
// business metrics on it (prometheus.NewCounterVec(...), then
// tel.Registry().MustRegister(c)).
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// Registerer is where a service registers its business metrics and collectors:
// the registry, with a service label when t is ForService's.
func (t *Telemetry) Registerer() prometheus.Registerer { return t.registerer() }

// Register registers c on Registerer.
func (t *Telemetry) Register(c prometheus.Collector) error { return register(t.registerer(), "a", c) }

// Shutdown flushes the spans not yet exported and stops the exporter. Call it once,
// after the servers and workers have stopped, with a context that bounds the
// wait.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

func (t *Telemetry) tracer() trace.Tracer { return t.tp.Tracer(scope) }
