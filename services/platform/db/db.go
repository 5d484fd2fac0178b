// Package db opens the database of a TrialHub service from a DSN: PostgreSQL in
// production and tests, embedded SQLite for the single-process dev stack.
//
// Which handle to use:
//
//   - InTx for every write that belongs with others (a row, its River job, its
//     audit event, its idempotency record): one transaction on the writer.
//   - Driver for the service's ent client outside a transaction: on SQLite it sends
//     SELECTs to the read pool and everything else to the writer.
//   - ReadSQL for plain database/sql reads (exports, reports, relays polling).
//   - SQL for plain database/sql writes outside a transaction, and for libraries
//     that need the writer pool itself (River's driver).
//
// On PostgreSQL all four share one pool. On SQLite the writer is one connection
// (SQLite has one writer at a time, so our goroutines queue in the pool instead of
// meeting SQLITE_BUSY) and the read pool is several read-only connections, which
// WAL lets read the last committed state while a write transaction is open.
//
// # PostgreSQL driver
//
// The client library is an option (WithPostgresDriver), the DSN stays a
// postgres:// URL. BenchmarkInsert (8 parallel writers, one row with an index and
// a JSON column per InTx, PostgreSQL 15 on loopback, 2 cores shared with other
// work at load 9, one run of 3 s) measured:
//
//	lib/pq   3,337 tx/s  300 µs/tx
//	pgx      4,423 tx/s  226 µs/tx  (1.33x lib/pq)
//	SQLite   2,992 tx/s  334 µs/tx  (one writer; for scale)
//
// so PGX is the default; LibPQ stays supported and both pass the same tests.
// PGX caches prepared statements per connection: a migration that changes a
// table's columns while a pool is open can make a cached SELECT * fail once
// ("cached plan must not change result type"); services migrate before serving.
package db

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "github.com/lib/pq"              // registers "postgres"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go, no cgo)
)

// Open connects to dsn:
//
//   - postgres://user:pass@host:port/db?sslmode=disable (pgx by default, lib/pq with
//     WithPostgresDriver(LibPQ)); one pool of WithMaxConns connections (default 20)
//   - sqlite:path/to/file.db (modernc.org/sqlite; the folder is created, foreign keys
//     on, WAL journal, 5 s busy timeout, write transactions BEGIN IMMEDIATE); one
//     writer connection and WithReadConns read-only connections (default 4)
//
// It pings the database before returning, so a wrong DSN fails at start.
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, o)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, dsn, o)
	default:
		return nil, fmt.Errorf("unsupported DSN %q: want postgres://... or sqlite:path", redact(dsn))
	}
}

func openPostgres(ctx context.Context, dsn string, o options) (*DB, error) {
	var name string
	switch o.pgDriver {
	case LibPQ:
		name = "postgres"
	case PGX:
		name = "pgx"
	default:
		return nil, fmt.Errorf("unknown PostgreSQL driver %q: want db.PGX or db.LibPQ", o.pgDriver)
	}
	pool, err := sql.Open(name, dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres database (%s): %w", o.pgDriver, err)
	}
	pool.SetMaxOpenConns(o.maxConns)
	pool.SetMaxIdleConns(max(1, o.maxConns/2))
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := ping(ctx, pool, o); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres database: %w", err)
	}
	return &DB{dialect: dialect.Postgres, write: pool, read: pool, opts: o}, nil
}

func openSQLite(ctx context.Context, dsn string, o options) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	if path == "" {
		return nil, fmt.Errorf("sqlite DSN %q: no file path", dsn)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite DSN %q: %w", dsn, err)
	}
	// The writer opens first: it switches the file to WAL, which the readers need.
	wq := url.Values{}
	wq.Add("_pragma", "foreign_keys(1)")
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "busy_timeout(5000)")
	wq.Add("_pragma", "synchronous(NORMAL)")
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	if err := ping(ctx, write, o); err != nil {
		write.Close()
		return nil, fmt.Errorf("connect to sqlite database: %w", err)
	}
	rq := url.Values{}
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "busy_timeout(5000)")
	rq.Add("_pragma", "query_only(1)") // a write sent to the read pool fails loudly
	read, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite read pool: %w", err)
	}
	read.SetMaxOpenConns(o.readConns)
	read.SetMaxIdleConns(o.readConns)
	if err := ping(ctx, read, o); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("connect to sqlite read pool: %w", err)
	}
	return &DB{dialect: dialect.SQLite, write: write, read: read, opts: o}, nil
}

func ping(ctx context.Context, pool *sql.DB, o options) error {
	ctx, cancel := context.WithTimeout(ctx, o.pingTimeout)
	defer cancel()
	return pool.PingContext(ctx)
}

// DB is a service's database: its writer and reader pools and its dialect.
type DB struct {
	dialect string
	write   *sql.DB
	read    *sql.DB // == write on PostgreSQL
	opts    options
}

// Dialect is dialect.Postgres or dialect.SQLite.
func (d *DB) Dialect() string { return d.dialect }

// SQL is the writer pool, for writes outside a transaction and for libraries that
// need the pool (River's database/sql driver). On SQLite it is one connection, so
// do not hold it for reads that can wait on a writer: use ReadSQL.
func (d *DB) SQL() *sql.DB { return d.write }

// ReadSQL is the pool for reads outside a transaction. On SQLite it is a separate
// read-only pool that never waits for an open write transaction (it sees the last
// commit); on PostgreSQL it is the same pool as SQL.
func (d *DB) ReadSQL() *sql.DB { return d.read }

// Driver is an ent driver for the service's ent client outside a transaction. On
// SQLite, Query calls whose statement is a SELECT go to the read pool and every
// other statement, and every transaction it opens, goes to the writer. Closing it
// (ent's client.Close) leaves the pools open: Close the DB.
func (d *DB) Driver() dialect.Driver { return newRouter(d) }

// Close closes the pool(s).
func (d *DB) Close() error {
	err := d.write.Close()
	if d.read != d.write {
		if rerr := d.read.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

// redact hides a password in a DSN for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
