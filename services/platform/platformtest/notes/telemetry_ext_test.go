package notes_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// Every process the kit runs traces its calls and the jobs they enqueue, and
// serves Prometheus metrics on its port: a note's server span and its job's span
// share one trace, and /metrics counts the call by procedure and code and the
// service's jobs by kind.
func TestProcessTracesAndMeasures(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	env := platformtest.Start(t, notes.Service("a"), platformtest.WithSQLite(), platformtest.WithTelemetryOptions(telemetry.WithExporter(exp)))
	res, err := addNote(ctx, env.Client(t, platformtest.Admin()), map[string]any{"text": "traced"})
	if err != nil {
		t.Fatal(err)
	}
	d := env.DB(t)
	eventually(t, "the job to be worked", func() bool {
		return count(t, d, "SELECT COUNT(*) FROM note_deliveries WHERE note_id = $1", res.Fields["id"].GetStringValue()) == 1
	})
	var server, work tracetest.SpanStub
	eventually(t, "the job's span", func() bool {
		for _, s := range exp.GetSpans() {
			switch {
			case s.Name == strings.TrimPrefix(notes.AddNoteProcedure, "/") && s.SpanKind == trace.SpanKindServer:
				server = s
			case s.Name == "river.work/notes.note_added":
				work = s
			}
		}
		return server.Name != "" && work.Name != ""
	})
	if work.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Errorf("the job ran in trace %s, want the request's %s", work.SpanContext.TraceID(), server.SpanContext.TraceID())
	}

	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	calls := 0.0
	for _, m := range families["rpc_server_duration_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["procedure"] == notes.AddNoteProcedure && labels["code"] == "ok" {
			calls += float64(m.GetHistogram().GetSampleCount())
		}
	}
	if calls != 1 {
		t.Errorf("rpc_server_duration_seconds count for AddNote ok = %v, want 1", calls)
	}
	for _, name := range []string{"trialhub_shed_limit", "trialhub_audit_events_total"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	labeled := false
	for _, m := range families["trialhub_audit_events_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			labeled = labeled || (l.GetName() == "service" && l.GetValue() == "notes")
		}
	}
	if !labeled {
		t.Errorf("trialhub_audit_events_total has no service=\"notes\" series")
	}
}
