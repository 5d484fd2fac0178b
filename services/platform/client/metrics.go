package client

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// BreakerMetrics reports the circuit breakers of the clients built with it
// (WithBreakerMetrics) to Prometheus. Register it once per registry, for one
// process or, with a service label (telemetry.ForService), one service:
//
//   - trialhub_client_breaker_state{dependency}: 0 closed, 1 half-open, 2 open
//     (gobreaker's State values), read from the breaker on every scrape, so an
//     open breaker whose OpenFor has passed reads as half-open;
//   - trialhub_client_breaker_transitions_total{dependency, to}: the changes of
//     state, to "closed", "half_open" or "open", each series present from the
//     first client on, so rate() and increase() see the first change.
//
// A dependency with two clients (an RPC and an HTTP one) reports the worse of
// their states. Clients whose breaker is disabled report nothing. The labels are
// dependency names from configuration: no personal data.
type BreakerMetrics struct {
	state       *prometheus.Desc
	transitions *prometheus.CounterVec

	mu       sync.Mutex
	breakers map[string][]*gobreaker.TwoStepCircuitBreaker[struct{}]
}

// NewBreakerMetrics returns a collector with no breakers yet.
func NewBreakerMetrics() *BreakerMetrics {
	return &BreakerMetrics{
		state: prometheus.NewDesc("trialhub_client_breaker_state",
			"Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.", []string{"dependency"}, nil),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trialhub_client_breaker_transitions_total",
			Help: "Circuit breaker state changes per dependency, by the state changed to (closed, half_open, open).",
		}, []string{"dependency", "to"}),
		breakers: map[string][]*gobreaker.TwoStepCircuitBreaker[struct{}]{},
	}
}

// WithBreakerMetrics reports the breaker of New's and HTTP's clients to m.
// Default: not reported.
func WithBreakerMetrics(m *BreakerMetrics) Option { return func(o *options) { o.breakers = m } }

// stateName is a gobreaker state as a label value.
func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateHalfOpen:
		return "half_open"
	case gobreaker.StateOpen:
		return "open"
	}
	return "closed"
}

func (m *BreakerMetrics) add(name string, cb *gobreaker.TwoStepCircuitBreaker[struct{}]) {
	if m == nil || cb == nil {
		return
	}
	for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
		m.transitions.WithLabelValues(name, stateName(s))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.breakers[name] = append(m.breakers[name], cb)
}

func (m *BreakerMetrics) changed(name string, to gobreaker.State) {
	if m != nil {
		m.transitions.WithLabelValues(name, stateName(to)).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *BreakerMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.state
	m.transitions.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *BreakerMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	states := make(map[string]gobreaker.State, len(m.breakers))
	for name, cbs := range m.breakers {
		worst := gobreaker.StateClosed
		for _, cb := range cbs {
			// State() moves an open breaker whose OpenFor passed to half-open
			// (and reports that transition), as a call would.
			if s := cb.State(); s > worst {
				worst = s
			}
		}
		states[name] = worst
	}
	m.mu.Unlock()
	for name, s := range states {
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, float64(s), name)
	}
	m.transitions.Collect(ch)
}
