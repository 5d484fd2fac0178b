package db

import (
	"context"
	"strings"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// router is the ent driver of Driver: writes and transactions on the writer, SELECTs
// on the reader. On PostgreSQL both are the same pool.
type router struct {
	*entsql.Driver // the writer: Exec, Tx, BeginTx, Dialect, Close
	reader         *entsql.Driver
}

func newRouter(d *DB) *router {
	return &router{
		Driver: entsql.OpenDB(d.dialect, d.write),
		reader: entsql.OpenDB(d.dialect, d.read),
	}
}

// Query runs a SELECT on the reader and anything else (INSERT ... RETURNING) on the
// writer.
func (r *router) Query(ctx context.Context, query string, args, v any) error {
	if isSelect(query) {
		return withContext(ctx, r.reader.Query(ctx, query, args, v))
	}
	return withContext(ctx, r.Driver.Query(ctx, query, args, v))
}

// Exec runs a statement on the writer.
func (r *router) Exec(ctx context.Context, query string, args, v any) error {
	return withContext(ctx, r.Driver.Exec(ctx, query, args, v))
}

// Close leaves the pools open: they belong to DB, which closes them.
func (r *router) Close() error { return nil }

// isSelect reports whether a statement is a plain read.
func isSelect(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

var _ dialect.Driver = (*router)(nil)
