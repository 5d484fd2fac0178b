package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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
// the service's ent client on it: ent.NewClient(ent.Driver(tx.Driver())). An ent
// operation that opens a transaction of its own (UpdateOne does) gets a no-op one
// inside this transaction, which commits or rolls back with it.
func (t *Tx) Driver() dialect.Driver {
	return nested{entsql.NewDriver(t.dialect, entsql.Conn{ExecQuerier: t.Tx})}
}

// nested is a driver inside a transaction: Tx and BeginTx join it.
type nested struct{ *entsql.Driver }

func (d nested) Tx(context.Context) (dialect.Tx, error) { return dialect.NopTx(d.Driver), nil }

func (d nested) BeginTx(context.Context, *sql.TxOptions) (dialect.Tx, error) {
	return dialect.NopTx(d.Driver), nil
}

// InTx runs fn in a transaction on the writer and commits when fn returns nil; it
// rolls back when fn returns an error or panics (the panic goes on).
//
// When fn or the commit fails with a serialization failure or deadlock (SQLSTATE
// 40001, 40P01) or SQLITE_BUSY, the whole transaction is run again, up to
// WithTxAttempts times in all (default 3), after a short jittered pause; so fn must
// do nothing outside the transaction that cannot be repeated. Any other error is
// returned at once.
func (d *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	return d.inTx(ctx, nil, fn)
}

// InTxOptions is InTx with an isolation level or a read-only transaction, e.g.
// &sql.TxOptions{Isolation: sql.LevelSerializable} on PostgreSQL.
func (d *DB) InTxOptions(ctx context.Context, opts *sql.TxOptions, fn func(ctx context.Context, tx *Tx) error) error {
	return d.inTx(ctx, opts, fn)
}

func (d *DB) inTx(ctx context.Context, opts *sql.TxOptions, fn func(ctx context.Context, tx *Tx) error) (err error) {
	if d.opts.observeTx != nil {
		var end func(error)
		ctx, end = d.opts.observeTx(ctx, d.dialect)
		defer func() { end(err) }()
	}
	backoff := d.opts.retryBase
	for attempt := 1; ; attempt++ {
		err := d.runTx(ctx, opts, fn)
		if err == nil || attempt >= d.opts.txAttempts || !retryable(err) {
			return err
		}
		// Full jitter between backoff/2 and backoff, so two conflicting
		// transactions do not collide again in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff *= 2
	}
}

func (d *DB) runTx(ctx context.Context, opts *sql.TxOptions, fn func(ctx context.Context, tx *Tx) error) (err error) {
	sqlTx, err := d.write.BeginTx(ctx, opts)
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
		err = withContext(ctx, err)
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("roll back: %w", rbErr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return withContext(ctx, fmt.Errorf("commit: %w", err))
	}
	return nil
}

// withContext adds ctx's error to err when ctx ended: lib/pq reports a statement
// stopped by a context deadline as "query canceled" (57014) only, and Code should
// still say deadline_exceeded.
func withContext(ctx context.Context, err error) error {
	if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
		return errors.Join(err, cerr)
	}
	return err
}
