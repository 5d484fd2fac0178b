package db_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// backend is one way of opening a database; every behaviour test runs over all.
type backend struct {
	name string
	open func(t testing.TB, opts ...db.Option) *db.DB
}

func postgresBackend(drv db.PostgresDriver) backend {
	return backend{name: "postgres-" + string(drv), open: func(t testing.TB, opts ...db.Option) *db.DB {
		t.Helper()
		d, err := db.Open(context.Background(), pgtest.New(t), append([]db.Option{db.WithPostgresDriver(drv)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}}
}

var pgBackends = []backend{postgresBackend(db.LibPQ), postgresBackend(db.PGX)}

var sqliteBackend = backend{name: "sqlite", open: func(t testing.TB, opts ...db.Option) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "svc.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}}

var allBackends = append(append([]backend{}, pgBackends...), sqliteBackend)
