package platform

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/migrate"
)

// The verification job reports an intact trail as 1 and a tampered one as 0,
// with the time it ran.
func TestVerifyAuditReportsTheChain(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := migrate.Apply(ctx, d, migrate.Source{Name: "audit", FS: audit.Migrations}); err != nil {
		t.Fatal(err)
	}
	trail := audit.New()
	for _, action := range []string{"NOTE_ADDED", "NOTE_CHANGED", "NOTE_REMOVED"} {
		if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := trail.Append(ctx, tx, audit.Event{Actor: audit.Actor{ID: "admin-1", Role: "ADMIN"}, Action: action, RecordType: "NOTE", RecordID: "n1"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	metrics, err := newAuditMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := &verifyAuditWorker{db: d, audit: trail, metrics: metrics, log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(metrics.intact); v != 1 {
		t.Fatalf("intact trail: trialhub_audit_verification_intact = %v, want 1", v)
	}
	if v := testutil.ToFloat64(metrics.at); v <= 0 {
		t.Fatalf("trialhub_audit_verification_timestamp_seconds = %v, want the run's time", v)
	}

	// Someone with direct access to the database edits an entry.
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET action = 'NOTE_VIEWED' WHERE sequence = 2`} {
		if _, err := d.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(metrics.intact); v != 0 {
		t.Fatalf("tampered trail: trialhub_audit_verification_intact = %v, want 0", v)
	}
}
