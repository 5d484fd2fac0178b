package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// Tx is one database transaction that ent, River and the kit's components (audit,
// idempotency) all write through, so that a row, the job it enqueues, its audit
// event and its idempotency record commit or roll back together.
type Tx struct {
	*sql.Tx
	dialect string
}

// Dialect is the ent dialect of the transaction's database: dialect.Postgres or
// dialect.SQLite.
func (t *Tx) Dialect() string { return t.dialect }

// Driver is an ent driver that runs every statement inside this transaction; build
// the service's ent client on it: ent.NewClient(ent.Driver(tx.Driver())).
func (t *Tx) Driver() dialect.Driver {
	return entsql.NewDriver(t.dialect, entsql.Conn{ExecQuerier: t.Tx})
}

// InTx runs fn in a transaction on the writer and commits when fn returns nil; it
// rolls back when fn returns an error or panics (the panic goes on).
func (d *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) (err error) {
	sqlTx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{Tx: sqlTx, dialect: d.dialect}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
	}()
	if err := fn(ctx, tx); err != nil {
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("roll back: %w", rbErr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
