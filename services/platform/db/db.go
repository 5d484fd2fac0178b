// Package db opens the database of a TrialHub service from a DSN: PostgreSQL in
// production and tests, embedded SQLite for the single-process dev stack.
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
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/lib/pq"  // registers "postgres"
	_ "modernc.org/sqlite" // registers "sqlite" (pure Go, no cgo)
)

// Open connects to dsn and returns an ent driver for it:
//
//   - postgres://user:pass@host:port/db?sslmode=disable (github.com/lib/pq)
//   - sqlite:path/to/file.db (modernc.org/sqlite; the folder is created, foreign keys
//     on, WAL journal, 5 s busy timeout)
//
// It pings the database before returning, so a wrong DSN fails at start.
func Open(ctx context.Context, dsn string) (*DB, error) {
	name, source, dia, err := parse(dsn)
	if err != nil {
		return nil, err
	}
	sqlDB, err := sql.Open(name, source)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dia, err)
	}
	if dia == dialect.SQLite {
		// One writer at a time is SQLite's model; a single connection avoids
		// SQLITE_BUSY between our own goroutines, and WAL keeps readers unblocked.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dia, err)
	}
	return &DB{dialect: dia, write: sqlDB}, nil
}

// DB is a service's database: the pool(s) behind it and its dialect.
type DB struct {
	dialect string
	write   *sql.DB
}

// Dialect is dialect.Postgres or dialect.SQLite.
func (d *DB) Dialect() string { return d.dialect }

// SQL is the database/sql pool for statements outside a transaction.
func (d *DB) SQL() *sql.DB { return d.write }

// Driver is an ent driver over the pool, for the service's ent client.
func (d *DB) Driver() dialect.Driver { return entsql.OpenDB(d.dialect, d.write) }

// Close closes the pool(s).
func (d *DB) Close() error { return d.write.Close() }

// parse maps a DSN to the database/sql driver name, its source string and the ent
// dialect.
func parse(dsn string) (driver, source, dia string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn, dialect.Postgres, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if path == "" {
			return "", "", "", fmt.Errorf("sqlite DSN %q: no file path", dsn)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return "", "", "", fmt.Errorf("sqlite DSN %q: %w", dsn, err)
			}
		}
		q := url.Values{}
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "busy_timeout(5000)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		return "sqlite", "file:" + path + "?" + q.Encode(), dialect.SQLite, nil
	default:
		return "", "", "", fmt.Errorf("unsupported DSN %q: want postgres://... or sqlite:path", redact(dsn))
	}
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
