package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect/v2"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// TestRPCMetricsCountByProcedureAndCode: both sides of a call count it, by the
// code the client received.
func TestRPCMetricsCountByProcedureAndCode(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	back := &backTrials{}
	tel := newTelemetry(t, "trial", exp)
	url := serve(t, tel, func(s *connect.Server) { trialv1connect.RegisterTrialServiceHandler(s, back) })
	client := dial(tel, url) // the same process calls itself: both sides land in one registry
	for _, id := range []string{"t-1", "t-2", "missing"} {
		_, _ = client.GetTrial(context.Background(), &trialv1.GetTrialRequest{TrialId: id})
	}
	got := scrape(t, tel)
	for _, name := range []string{"rpc_server_duration_seconds", "rpc_client_duration_seconds"} {
		for code, want := range map[string]float64{"ok": 2, "not_found": 1} {
			labels := map[string]string{"procedure": getTrial, "code": code}
			if v, ok := value(got, name, labels); !ok || v != want {
				t.Errorf("%s%v count = %v (present %v), want %v", name, labels, v, ok, want)
			}
		}
	}
	if _, ok := got["go_goroutines"]; ok {
		t.Error("go_goroutines present WithoutRuntimeMetrics")
	}
}

func TestRuntimeProcessAndSheddingMetrics(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), "epro")
	if err != nil {
		t.Fatal(err)
	}
	var shed atomic.Int64
	if err := tel.RegisterShedding(func() telemetry.Shedding {
		return telemetry.Shedding{Limit: 64, InFlight: 3, Admitted: 100, Shed: shed.Load()}
	}); err != nil {
		t.Fatal(err)
	}
	if err := tel.RegisterShedding(func() telemetry.Shedding { return telemetry.Shedding{} }); err == nil {
		t.Error("a second RegisterShedding on one registry succeeded, want an error")
	}

	got := scrape(t, tel)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	for name, want := range map[string]float64{"trialhub_shed_limit": 64, "trialhub_requests_in_flight": 3, "trialhub_admitted_requests_total": 100, "trialhub_shed_requests_total": 0} {
		if v, ok := value(got, name, nil); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}

	shed.Store(7)
	got = scrape(t, tel)
	if v, _ := value(got, "trialhub_shed_requests_total", nil); v != 7 {
		t.Errorf("trialhub_shed_requests_total = %v, want 7", v)
	}

	// Business metrics: a service's own collector on the same registry.
	c := newCounter(tel)
	c.Inc()
	got = scrape(t, tel)
	if v, _ := value(got, "epro_submissions_total", nil); v != 1 {
		t.Errorf("a service's counter on Registry() = %v, want 1", v)
	}
}

// TestOTLPExportOnlyWhenConfigured: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans
// reach the collector (by Shutdown at the latest); without it, nothing is sent.
func TestOTLPExportOnlyWhenConfigured(t *testing.T) {
	var posts atomic.Int64
	var path atomic.Value
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		path.Store(r.URL.Path)
		posts.Add(1)
	}))
	defer collector.Close()

	run := func(t *testing.T) *telemetry.Telemetry {
		tel, err := telemetry.Setup(context.Background(), "epro", telemetry.WithoutRuntimeMetrics())
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.Tracer("test").Start(context.Background(), "work")
		span.End()
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		return tel
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
		if tel := run(t); tel.Exporting() {
			t.Error("Exporting() with no endpoint")
		}
		if n := posts.Load(); n != 0 {
			t.Errorf("%d OTLP requests with no endpoint configured, want 0", n)
		}
	})
	t.Run("set", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		if tel := run(t); !tel.Exporting() {
			t.Error("not Exporting() with an endpoint")
		}
		if n := posts.Load(); n < 1 || path.Load() != "/v1/traces" {
			t.Errorf("%d OTLP requests to %v, want at least one to /v1/traces", n, path.Load())
		}
	})
	t.Run("sampler off", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
		before := posts.Load()
		run(t)
		if n := posts.Load() - before; n != 0 {
			t.Errorf("%d OTLP requests with OTEL_TRACES_SAMPLER=always_off, want 0", n)
		}
	})
	t.Run("ratio option", func(t *testing.T) {
		tel, err := telemetry.Setup(context.Background(), "epro", telemetry.WithoutRuntimeMetrics(),
			telemetry.WithExporter(tracetest.NewInMemoryExporter()), telemetry.WithSampleRatio(0))
		if err != nil {
			t.Fatal(err)
		}
		_, root := tel.Tracer("test").Start(context.Background(), "root")
		if root.SpanContext().IsSampled() {
			t.Error("root sampled at ratio 0")
		}
		// Parent-based: a sampled caller's trace is kept whatever the ratio.
		exp := tracetest.NewInMemoryExporter()
		tel2, err := telemetry.Setup(context.Background(), "trial", telemetry.WithoutRuntimeMetrics(), telemetry.WithExporter(exp), telemetry.WithSampleRatio(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, call := connect.NewClientContext(context.Background())
		back := &backTrials{}
		url := serve(t, tel2, func(s *connect.Server) { trialv1connect.RegisterTrialServiceHandler(s, back) })
		call.RequestHeader().Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		plain := trialv1connect.NewTrialServiceClient(connect.NewClient(connectTransport(url)))
		if _, err := plain.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: "t"}); err != nil {
			t.Fatal(err)
		}
		if n := len(exp.GetSpans()); n != 1 {
			t.Errorf("%d spans for a sampled caller at ratio 0, want 1 (parent-based)", n)
		}
	})
}
