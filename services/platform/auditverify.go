package platform

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
)

// verifyAuditEvery is how often each service verifies its whole audit trail.
// One run reads the trail once in sequence order and recomputes each entry's
// hash: about a second per few hundred thousand entries, on the service's own
// database, once per period whatever the number of replicas (a River periodic
// job is worked by one of them).
const verifyAuditEvery = 15 * time.Minute

// verifyAudit is the periodic job that verifies the audit trail and reports the
// result as metrics (auditMetrics), for the "audit verification failing" alert.
type verifyAudit struct{}

// Kind implements river.JobArgs.
func (verifyAudit) Kind() string { return "platform.verify_audit_trail" }

// Not unique by period, unlike purgeKeys: only River's leader inserts periodic
// jobs, and a process that starts must verify at once (RunOnStart), even if
// another verified minutes before.

// auditMetrics are the gauges the verification sets, in the process that ran it:
//
//   - trialhub_audit_verification_intact: 1 when the last verification found the
//     chain intact, 0 when it found a break (the break's sequence and kind go to
//     the log at ERROR, and to VerifyAuditTrail for an admin);
//   - trialhub_audit_verification_timestamp_seconds: when it last completed, so a
//     verification that stopped running (its job failing) shows as stale.
type auditMetrics struct {
	intact, at prometheus.Gauge
}

func newAuditMetrics(reg prometheus.Registerer) (*auditMetrics, error) {
	m := &auditMetrics{
		intact: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trialhub_audit_verification_intact",
			Help: "1 when the last verification of the audit trail found it intact, 0 when it found a break."}),
		at: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trialhub_audit_verification_timestamp_seconds",
			Help: "When the audit trail was last verified (Unix time)."}),
	}
	for _, c := range []prometheus.Collector{m.intact, m.at} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("audit verification metrics: %w", err)
		}
	}
	return m, nil
}

type verifyAuditWorker struct {
	river.WorkerDefaults[verifyAudit]
	db      *db.DB
	audit   *audit.Log
	metrics *auditMetrics
	log     *slog.Logger
}

func (w *verifyAuditWorker) Work(ctx context.Context, _ *river.Job[verifyAudit]) error {
	rep, err := w.audit.Verify(ctx, w.db, audit.Range{})
	if err != nil {
		return fmt.Errorf("verify the audit trail: %w", err)
	}
	if rep.Intact {
		w.metrics.intact.Set(1)
	} else {
		w.metrics.intact.Set(0)
		w.log.ErrorContext(ctx, "audit trail broken", "first_broken", rep.FirstBroken, "kind", string(rep.Kind), "checked", rep.Checked)
	}
	w.metrics.at.Set(float64(rep.VerifiedAt.Unix()))
	return nil
}
