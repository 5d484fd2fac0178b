package telemetry_test

import (
	"net/http"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trialhub/trialhub/services/platform/telemetry"
)

func connectTransport(url string) connect.Transport {
	return connecthttp.NewTransport(http.DefaultClient, url)
}

func newCounter(tel *telemetry.Telemetry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "epro_submissions_total", Help: "Submissions."})
	tel.Registry().MustRegister(c)
	return c
}
