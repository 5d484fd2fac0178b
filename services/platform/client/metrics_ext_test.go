package client_test

import (
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trialhub/trialhub/services/platform/client"
)

// breakerSeries reads the breaker state of dep and its transitions from reg.
func breakerSeries(t *testing.T, reg *prometheus.Registry, dep string) (state float64, to map[string]float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	state, to = -1, map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["dependency"] != dep {
				continue
			}
			switch f.GetName() {
			case "trialhub_client_breaker_state":
				state = value(m)
			case "trialhub_client_breaker_transitions_total":
				to[labels["to"]] = value(m)
			}
		}
	}
	return state, to
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

func TestBreakerMetricsFollowTheDependency(t *testing.T) {
	s := newServer(t)
	s.serveStatus(failing(connect.CodeUnavailable))
	dep := s.dependency()
	dep.Breaker = testBreaker
	metrics := client.NewBreakerMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	c := s.patients(dep, client.WithBreakerMetrics(metrics))
	ctx := t.Context()

	state, to := breakerSeries(t, reg, "patient")
	if state != 0 || len(to) != 3 || to["open"] != 0 || to["half_open"] != 0 || to["closed"] != 0 {
		t.Fatalf("before any call: state %v, transitions %v; want closed (0) and three series at 0", state, to)
	}
	for range 5 {
		if _, err := c.GetSubjectStatus(ctx, statusRequest()); connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("call: %v, want unavailable", err)
		}
	}
	state, to = breakerSeries(t, reg, "patient")
	if state != 2 || to["open"] != 1 {
		t.Fatalf("after 5 failures: state %v, transitions %v; want open (2) after one transition to open", state, to)
	}

	// OpenFor (300 ms) later a scrape reads half-open, as the next call would.
	for start := time.Now(); state != 1 && time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		state, to = breakerSeries(t, reg, "patient")
	}
	if state != 1 || to["half_open"] != 1 {
		t.Fatalf("after OpenFor: state %v, transitions %v; want half-open (1)", state, to)
	}
	s.serveStatus(healthyStatus)
	if _, err := c.GetSubjectStatus(ctx, statusRequest()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	state, to = breakerSeries(t, reg, "patient")
	if state != 0 || to["closed"] != 1 || to["open"] != 1 {
		t.Fatalf("after a good probe: state %v, transitions %v; want closed (0)", state, to)
	}
}

func TestBreakerMetricsLeaveOutDisabledBreakers(t *testing.T) {
	s := newServer(t)
	dep := s.dependency()
	dep.Breaker.Disabled = true
	metrics := client.NewBreakerMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	s.patients(dep, client.WithBreakerMetrics(metrics))
	if state, to := breakerSeries(t, reg, "patient"); state != -1 || len(to) != 0 {
		t.Fatalf("disabled breaker: state %v, transitions %v; want no series", state, to)
	}
}
