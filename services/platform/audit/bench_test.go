package audit_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// BenchmarkAppend measures one audited transaction (an INSERT and its entry),
// with b.RunParallel writers contending for the chain's head.
func BenchmarkAppend(b *testing.B) {
	for name, dsn := range map[string]string{
		"postgres": pgtest.New(b),
		"sqlite":   "sqlite:" + filepath.Join(b.TempDir(), "svc.db"),
	} {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		for _, q := range []string{migration(b, d), `CREATE TABLE items (name TEXT NOT NULL)`} {
			if _, err := d.SQL().Exec(q); err != nil {
				b.Fatal(err)
			}
		}
		l := audit.New()
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('x')`); err != nil {
							return err
						}
						_, err := l.Append(ctx, tx, audit.Event{Action: "CREATED", RecordType: "ITEM", RecordID: "x"})
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			rep, err := l.Verify(context.Background(), d, audit.Range{})
			if err != nil || !rep.Intact {
				b.Fatalf("chain after the benchmark: %+v, %v", rep, err)
			}
		})
	}
}

func migration(b *testing.B, d *db.DB) string {
	dir := "postgres"
	if d.Dialect() != "postgres" {
		dir = "sqlite"
	}
	ddl, err := fs.ReadFile(audit.Migrations, dir+"/0001_audit_events.sql")
	if err != nil {
		b.Fatal(err)
	}
	return string(ddl)
}
