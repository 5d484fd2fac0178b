package telemetry

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// rpcBuckets span 5 ms to 10 s: the kit's unary default deadline is a few
// seconds, and the slow-call threshold is 500 ms.
var rpcBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

type rpcMetrics struct {
	server, client *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) (*rpcMetrics, error) {
	m := &rpcMetrics{
		server: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rpc_server_duration_seconds",
			Help:    "Duration of RPCs this process served, by procedure and the code the client received; _count counts them.",
			Buckets: rpcBuckets,
		}, []string{"procedure", "code"}),
		client: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rpc_client_duration_seconds",
			Help:    "Duration of RPCs this process made to other services, retries included, by procedure and code; _count counts them.",
			Buckets: rpcBuckets,
		}, []string{"procedure", "code"}),
	}
	for _, c := range []prometheus.Collector{m.server, m.client} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: rpc metrics: %w", err)
		}
	}
	return m, nil
}

// MetricsHandler serves the registry in the Prometheus text format (or
// OpenMetrics when the scraper asks for it), with
// promhttp_metric_handler_requests_total counting scrapes. A collector that fails
// is left out and the rest are served (HTTP 500 only when nothing can be).
//
// Mount it on the service's own port at /metrics: Prometheus scrapes the address
// it already knows (the one health probes use), there is one port per service to
// open and configure, and the metrics carry no personal data (labels are
// procedures, codes, job kinds and dependency names). The ingress must not route
// /metrics from outside, as it must not route any non-RPC admin path.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.InstrumentMetricHandler(t.reg, promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          t.reg,
		EnableOpenMetrics: true,
	}))
}
