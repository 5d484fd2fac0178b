package db_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestOpenPostgresDefault(t *testing.T) {
	ctx := context.Background()
	drv, err := db.Open(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	if drv.Dialect() != "postgres" {
		t.Fatalf("dialect = %q, want postgres", drv.Dialect())
	}
	var n int
	if err := drv.SQL().QueryRowContext(ctx, "SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: n=%d err=%v", n, err)
	}
}

func TestOpenSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "svc.db")
	drv, err := db.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	for pragma, want := range map[string]string{"foreign_keys": "1", "journal_mode": "wal", "busy_timeout": "5000"} {
		var got string
		if err := drv.SQL().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
	// Foreign keys are enforced, not just declared.
	if _, err := drv.SQL().ExecContext(ctx, `CREATE TABLE parent (id INTEGER PRIMARY KEY);
		CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id))`); err != nil {
		t.Fatal(err)
	}
	if _, err := drv.SQL().ExecContext(ctx, `INSERT INTO child (id, parent_id) VALUES (1, 99)`); err == nil {
		t.Fatal("insert with a dangling foreign key succeeded")
	}
}

func TestOpenRejectsUnknownDSN(t *testing.T) {
	for _, dsn := range []string{"mysql://u:secret@h/db", "sqlite:", ""} {
		_, err := db.Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error leaks the password: %v", dsn, err)
		}
	}
}
