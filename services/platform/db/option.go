package db

import (
	"context"
	"time"
)

// PostgresDriver names the database/sql driver that speaks to PostgreSQL. The DSN is
// a postgres:// URL for both; only the client library differs.
type PostgresDriver string

const (
	// LibPQ is github.com/lib/pq. Every statement is sent unnamed, so PostgreSQL
	// parses and plans it again on each call.
	LibPQ PostgresDriver = "pq"
	// PGX is github.com/jackc/pgx/v5/stdlib. It prepares each statement once per
	// connection and reuses the plan (its statement cache), which is what makes it
	// faster on repeated writes; see the package doc for figures.
	PGX PostgresDriver = "pgx"
)

// Option configures Open.
type Option func(*options)

type options struct {
	pgDriver    PostgresDriver
	maxConns    int
	readConns   int
	txAttempts  int
	retryBase   time.Duration
	pingTimeout time.Duration
	observeTx   TxObserver
}

func defaults() options {
	return options{
		pgDriver:    PGX,
		maxConns:    20,
		readConns:   4,
		txAttempts:  3,
		retryBase:   5 * time.Millisecond,
		pingTimeout: 10 * time.Second,
	}
}

// WithPostgresDriver chooses the PostgreSQL client library: PGX (the default) or
// LibPQ. SQLite DSNs ignore it.
func WithPostgresDriver(d PostgresDriver) Option {
	return func(o *options) { o.pgDriver = d }
}

// WithMaxConns caps the open connections of the PostgreSQL pool (default 20; half of
// them are kept idle, for up to 5 minutes). SQLite ignores it: its writer is always
// one connection, because SQLite allows one writer at a time.
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// WithReadConns sizes SQLite's read-only pool (default 4), which serves ReadSQL and
// the SELECTs of Driver beside the single writer. PostgreSQL ignores it: reads share
// the one pool.
func WithReadConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readConns = n
		}
	}
}

// TxObserver is told of every InTx when it starts, with the transaction's
// context and the database's dialect, and returns the context fn runs in and a
// function called with InTx's result when it ends (all attempts included). The
// kit traces transactions with it (telemetry.TxSpans).
type TxObserver func(ctx context.Context, dialect string) (context.Context, func(error))

// WithTxObserver observes every InTx and InTxOptions with o. Default none.
func WithTxObserver(o TxObserver) Option { return func(opts *options) { opts.observeTx = o } }

// WithTxAttempts bounds how many times InTx runs a transaction whose fn failed with
// a serialization failure or deadlock (SQLSTATE 40001, 40P01) or SQLITE_BUSY
// (default 3: the first run and two retries, after a jittered 2.5-5 ms and then
// 5-10 ms pause). 1 turns retries off.
func WithTxAttempts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.txAttempts = n
		}
	}
}
