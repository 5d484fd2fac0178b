package patient

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the patient service's business metrics, served at /metrics. Their
// labels are fixed reasons, never an identifier.
type metrics struct {
	// loginFailures counts refused sign-ins by reason: credentials (unknown
	// identifier, wrong password or pending account: one answer to the caller),
	// locked, throttled, inactive (suspended or closed account).
	loginFailures *prometheus.CounterVec
	// lockouts counts identifiers locked after too many failures, by whether
	// they name an account (known) or not (unknown: someone guessing).
	lockouts *prometheus.CounterVec
}

// Login failure reasons and lockout kinds, the label values.
const (
	failCredentials = "credentials"
	failLocked      = "locked"
	failThrottled   = "throttled"
	failInactive    = "inactive"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patient_login_failures_total",
			Help: "Refused sign-ins (Login) by reason: credentials, locked, throttled, inactive.",
		}, []string{"reason"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patient_lockouts_total",
			Help: "Identifiers locked after too many failed sign-ins, by whether they name an account (known, unknown).",
		}, []string{"account"}),
	}
	for _, r := range []string{failCredentials, failLocked, failThrottled, failInactive} {
		m.loginFailures.WithLabelValues(r)
	}
	m.lockouts.WithLabelValues("known")
	m.lockouts.WithLabelValues("unknown")
	for _, c := range []prometheus.Collector{m.loginFailures, m.lockouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("patient metrics: %w", err)
		}
	}
	return m, nil
}
