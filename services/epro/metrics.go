package epro

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ePRO service's business metrics, served at /metrics: labels
// are questionnaire URLs and versions, outcomes and reasons, never a subject.
type metrics struct {
	// submissions counts SubmitResponse calls that stored something, by
	// questionnaire (URL), version and outcome: accepted, late (in the grace
	// period), quarantined. A replayed idempotency key counts once.
	submissions *prometheus.CounterVec
	// quarantined counts quarantined submissions by reason (WINDOW_CLOSED, ...).
	quarantined *prometheus.CounterVec
}

// Submission outcomes, the label values.
const (
	outcomeAccepted    = "accepted"
	outcomeLate        = "late"
	outcomeQuarantined = "quarantined"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "epro_submissions_total",
			Help: "Submitted responses by questionnaire URL, version and outcome (accepted, late, quarantined).",
		}, []string{"questionnaire", "version", "outcome"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "epro_quarantined_submissions_total",
			Help: "Submissions kept in the quarantine, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.submissions, m.quarantined} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("epro metrics: %w", err)
		}
	}
	return m, nil
}
