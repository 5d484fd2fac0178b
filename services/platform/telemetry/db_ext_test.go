package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// databases opens a fresh PostgreSQL database and a fresh SQLite file.
func databases(t *testing.T) map[string]func(t *testing.T) *db.DB {
	open := func(t *testing.T, dsn string) *db.DB {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	return map[string]func(t *testing.T) *db.DB{
		"postgres": func(t *testing.T) *db.DB { return open(t, pgtest.New(t)) },
		"sqlite":   func(t *testing.T) *db.DB { return open(t, "sqlite:"+filepath.Join(t.TempDir(), "t.db")) },
	}
}

type deliverArgs struct{ N int }

func (deliverArgs) Kind() string { return "deliver" }

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	seen chan trace.SpanContext
}

func (w *deliverWorker) Work(ctx context.Context, _ *river.Job[deliverArgs]) error {
	w.seen <- trace.SpanContextFromContext(ctx)
	return nil
}

// TestJobSpanIsAChildOfTheInsertingRequest: a job inserted in a request's
// transaction is worked in a span whose parent is the request's span, in the
// same trace, on both databases.
func TestJobSpanIsAChildOfTheInsertingRequest(t *testing.T) {
	for name, open := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			exp := tracetest.NewInMemoryExporter()
			tel := newTelemetry(t, "epro", exp)
			d := open(t)
			workers := river.NewWorkers()
			w := &deliverWorker{seen: make(chan trace.SpanContext, 1)}
			river.AddWorker(workers, w)
			q, err := jobs.New(d, workers, jobs.WithQueues(map[string]int{river.QueueDefault: 1}),
				jobs.WithFetch(10*time.Millisecond, 50*time.Millisecond), jobs.WithPlugins(tel.RiverMiddleware()))
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}

			reqCtx, req := tel.Tracer("test").Start(ctx, "SubmitResponse", trace.WithSpanKind(trace.SpanKindServer))
			err = tel.InTx(reqCtx, d, "submit_response", func(ctx context.Context, tx *db.Tx) error {
				_, err := q.InsertTx(ctx, tx, deliverArgs{N: 1}, nil)
				return err
			})
			req.End()
			if err != nil {
				t.Fatal(err)
			}
			var inJob trace.SpanContext
			select {
			case inJob = <-w.seen:
			case <-time.After(30 * time.Second): // a bound for a hung test, not a timing assertion
				t.Fatal("job not worked")
			}
			if err := q.Stop(ctx); err != nil {
				t.Fatal(err)
			}

			spans := exp.GetSpans()
			byName := map[string]tracetest.SpanStub{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			work, ok := byName["river.work/deliver"]
			if !ok {
				t.Fatalf("no river.work/deliver span among %d spans", len(spans))
			}
			tx := byName["db submit_response"]
			if tx.Parent.SpanID() != req.SpanContext().SpanID() {
				t.Errorf("transaction span's parent %s, want the request span %s", tx.Parent.SpanID(), req.SpanContext().SpanID())
			}
			if work.SpanContext.TraceID() != req.SpanContext().TraceID() {
				t.Errorf("job span in trace %s, want the request's %s", work.SpanContext.TraceID(), req.SpanContext().TraceID())
			}
			// The job was inserted inside the transaction's span: that is its parent.
			if work.Parent.SpanID() != tx.SpanContext.SpanID() {
				t.Errorf("job span's parent %s, want the inserting transaction's span %s", work.Parent.SpanID(), tx.SpanContext.SpanID())
			}
			if len(work.Links) != 1 || work.Links[0].SpanContext.SpanID() != tx.SpanContext.SpanID() {
				t.Errorf("job span links %v, want one to the inserting span", work.Links)
			}
			if work.SpanKind != trace.SpanKindConsumer || attr(work, "messaging.system") != "river" || attr(work, "river.job.kind") != "deliver" {
				t.Errorf("job span kind %v, messaging.system %q, kind %q", work.SpanKind, attr(work, "messaging.system"), attr(work, "river.job.kind"))
			}
			if inJob.SpanID() != work.SpanContext.SpanID() {
				t.Errorf("worker's context span %s, want the job span %s", inJob.SpanID(), work.SpanContext.SpanID())
			}
			if got := attr(tx, "db.system.name"); got != map[string]string{"postgres": "postgresql", "sqlite": "sqlite"}[name] {
				t.Errorf("db.system.name %q", got)
			}
		})
	}
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, tel *telemetry.Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the value of the family's series with exactly these labels, and
// whether there is one. Histograms give their sample count.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
series:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func TestRiverJobsAndAuditEventsOnScrape(t *testing.T) {
	for name, open := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := open(t)
			if err := migrate.Apply(ctx, d, migrate.Source{Name: "audit", FS: audit.Migrations}); err != nil {
				t.Fatal(err)
			}
			q, err := jobs.New(d, nil) // insert-only
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			tel, err := telemetry.Setup(ctx, "epro", telemetry.WithoutRuntimeMetrics())
			if err != nil {
				t.Fatal(err)
			}
			if err := tel.RegisterRiverJobs(d, telemetry.WithQueryEvery(0)); err != nil {
				t.Fatal(err)
			}
			if err := tel.RegisterAuditEvents(d, telemetry.WithQueryEvery(0)); err != nil {
				t.Fatal(err)
			}

			got := scrape(t, tel)
			if v, ok := value(got, "trialhub_audit_events_total", nil); !ok || v != 0 {
				t.Errorf("audit events on an empty trail = %v (present %v), want 0", v, ok)
			}
			if _, ok := got["trialhub_river_jobs"]; ok {
				t.Errorf("trialhub_river_jobs present with no jobs")
			}

			log := audit.New()
			err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				for i := range 3 {
					if _, err := q.InsertTx(ctx, tx, deliverArgs{N: i}, nil); err != nil {
						return err
					}
				}
				if _, err := q.InsertTx(ctx, tx, otherArgs{}, nil); err != nil {
					return err
				}
				for range 2 {
					if _, err := log.Append(ctx, tx, audit.Event{Action: "SUBMITTED", RecordType: "RESPONSE"}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// A dead letter: River's own states and timestamps, set by hand.
			if _, err := d.SQL().ExecContext(ctx, "UPDATE river_job SET state = 'discarded', finalized_at = created_at WHERE id = (SELECT min(id) FROM river_job WHERE kind = 'deliver')"); err != nil {
				t.Fatal(err)
			}

			got = scrape(t, tel)
			for _, c := range []struct {
				kind, state string
				want        float64
			}{{"deliver", "available", 2}, {"deliver", "discarded", 1}, {"other", "available", 1}} {
				labels := map[string]string{"kind": c.kind, "state": c.state}
				if v, ok := value(got, "trialhub_river_jobs", labels); !ok || v != c.want {
					t.Errorf("trialhub_river_jobs%v = %v (present %v), want %v", labels, v, ok, c.want)
				}
				if age, ok := value(got, "trialhub_river_oldest_job_age_seconds", labels); !ok || age < 0 || age > 3600 {
					t.Errorf("oldest job age%v = %v (present %v), want a few seconds", labels, age, ok)
				}
			}
			if n := len(got["trialhub_river_jobs"].GetMetric()); n != 3 {
				t.Errorf("%d trialhub_river_jobs series, want 3", n)
			}
			if v, _ := value(got, "trialhub_audit_events_total", nil); v != 2 {
				t.Errorf("audit events = %v, want 2", v)
			}
			for _, c := range []string{"river_jobs", "audit_events"} {
				if v, ok := value(got, "trialhub_collector_up", map[string]string{"collector": c}); !ok || v != 1 {
					t.Errorf("collector_up{%s} = %v (present %v), want 1", c, v, ok)
				}
			}

			// A database that fails: the collectors say so, the scrape still works.
			_ = d.Close()
			got = scrape(t, tel)
			if v, ok := value(got, "trialhub_collector_up", map[string]string{"collector": "river_jobs"}); !ok || v != 0 {
				t.Errorf("collector_up{river_jobs} after the database closed = %v (present %v), want 0", v, ok)
			}
			if _, ok := got["trialhub_river_jobs"]; ok {
				t.Errorf("stale trialhub_river_jobs served after a failed query")
			}
		})
	}
}

type otherArgs struct{}

func (otherArgs) Kind() string { return "other" }
