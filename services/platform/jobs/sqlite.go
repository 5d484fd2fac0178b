package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// openSQLite opens River's own connection to the SQLite file behind pool (read
// from PRAGMA database_list), with the settings db.Open uses: WAL, a 5 s busy
// timeout and BEGIN IMMEDIATE, so River's transactions and the service's take
// the write lock up front and wait for each other instead of failing with
// SQLITE_BUSY. One connection, as riversqlite asks.
func openSQLite(pool *sql.DB) (*sql.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		seq        int
		name, file string
	)
	if err := pool.QueryRowContext(ctx, "SELECT seq, name, file FROM pragma_database_list WHERE name = 'main'").Scan(&seq, &name, &file); err != nil {
		return nil, fmt.Errorf("jobs: find the SQLite file: %w", err)
	}
	if file == "" {
		return nil, fmt.Errorf("jobs: the SQLite database is in memory; River needs a file it can open a second connection to")
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	own, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("jobs: open River's SQLite connection: %w", err)
	}
	own.SetMaxOpenConns(1)
	if err := own.PingContext(ctx); err != nil {
		own.Close()
		return nil, fmt.Errorf("jobs: open River's SQLite connection to %s: %w", file, err)
	}
	return own, nil
}
