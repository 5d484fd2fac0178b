package db_test

import (
	"context"
	"testing"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func TestOpenPostgresDrivers(t *testing.T) {
	for _, b := range pgBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, db.WithMaxConns(7))
			if d.Dialect() != "postgres" {
				t.Fatalf("dialect = %q, want postgres", d.Dialect())
			}
			if got := d.SQL().Stats().MaxOpenConnections; got != 7 {
				t.Errorf("MaxOpenConnections = %d, want 7", got)
			}
			if d.ReadSQL() != d.SQL() {
				t.Error("PostgreSQL ReadSQL is not the one pool")
			}
			// The ent driver and InTx see each other's writes.
			if err := d.Driver().Exec(ctx, `CREATE TABLE item (id bigserial PRIMARY KEY, name text NOT NULL)`, []any{}, nil); err != nil {
				t.Fatal(err)
			}
			if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				return tx.Driver().Exec(ctx, `INSERT INTO item (name) VALUES ($1)`, []any{"a"}, nil)
			}); err != nil {
				t.Fatal(err)
			}
			rows := &entRows{}
			if err := d.Driver().Query(ctx, `SELECT count(*) FROM item`, []any{}, rows.r()); err != nil {
				t.Fatal(err)
			}
			if n, err := rows.count(); err != nil || n != 1 {
				t.Fatalf("count = %d (err %v), want 1", n, err)
			}
		})
	}
}

func TestOpenRejectsUnknownPostgresDriver(t *testing.T) {
	_, err := db.Open(context.Background(), pgtest.New(t), db.WithPostgresDriver("mysql"))
	if err == nil {
		t.Fatal("Open with an unknown driver succeeded")
	}
}
