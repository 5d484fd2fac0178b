package telemetry_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/logs"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// The wiring a process does once: telemetry and the redacting logger first, then
// the server, clients and Queue that use them, then the collectors.
func Example() {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "epro") // OTLP only with OTEL_EXPORTER_OTLP_ENDPOINT
	if err != nil {
		log.Fatal(err)
	}
	defer tel.Shutdown(context.Background()) // after servers and workers stopped

	var level slog.LevelVar // TRIALHUB_LOG_LEVEL at start, LevelHandler at runtime
	logger := slog.New(logs.NewHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}),
		logs.WithLevel(&level)))

	srv := platform.NewServer("epro", platform.WithLogger(logger), platform.WithTelemetry(tel.ServerInterceptor()))
	srv.Handle("/metrics", tel.MetricsHandler())
	srv.Handle("/admin/log-level", adminOnly(logs.LevelHandler(&level)))
	_ = tel.RegisterShedding(func() telemetry.Shedding { return telemetry.Shedding(srv.Shedding()) })

	trial := client.New(client.Service("trial", "http://trial:8080"), client.WithInterceptors(tel.ClientInterceptor()))
	_ = trial

	d, err := db.Open(ctx, "sqlite:data/epro.db")
	if err != nil {
		log.Fatal(err)
	}
	q, err := jobs.New(d, nil, jobs.WithPlugins(tel.RiverMiddleware()))
	if err != nil {
		log.Fatal(err)
	}
	_ = q
	_ = tel.RegisterRiverJobs(d)
	_ = tel.RegisterAuditEvents(d)

	// A business metric of the service's own.
	submissions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "epro_submissions_total", Help: "Submissions by questionnaire and outcome.",
	}, []string{"questionnaire", "outcome"})
	tel.Registry().MustRegister(submissions)
	submissions.WithLabelValues("phq9", "accepted").Inc()
}

// adminOnly stands for the lead's check of an ADMIN bearer token.
func adminOnly(h http.Handler) http.Handler { return h }
