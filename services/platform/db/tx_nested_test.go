package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/trialhub/trialhub/services/platform/db"
)

// ent operations that open a transaction of their own (UpdateOne) run inside the
// kit's transaction: they neither panic nor commit on their own, and they roll
// back with it.
func TestTxDriverJoinsTheTransaction(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.SQL().ExecContext(ctx, `CREATE TABLE t (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	errRollback := errors.New("roll back")
	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		inner, err := tx.Driver().Tx(ctx)
		if err != nil {
			return err
		}
		if err := inner.Exec(ctx, `INSERT INTO t (n) VALUES (1)`, []any{}, nil); err != nil {
			return err
		}
		if err := inner.Commit(); err != nil { // a no-op: the outer transaction decides
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	var n int
	if err := d.ReadSQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the outer rollback: %d, %v; want 0 (the inner commit must not commit)", n, err)
	}
}
