package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one database a test runs against, through one database/sql driver.
type env struct {
	name    string
	dialect string
	dsn     string
	pool    *sql.DB
	inTx    func(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error
	opts    []Option // added to every queue of the env
}

// backends are the three ways a service reaches its database: PostgreSQL through
// lib/pq (db.Open, polling), PostgreSQL through pgx's database/sql driver (with a
// pgx LISTEN connection), and SQLite (db.Open).
var backends = []struct {
	name string
	open func(t testing.TB) *env
}{
	{"postgres-libpq", func(t testing.TB) *env {
		dsn := pgtest.New(t)
		d, err := db.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return &env{name: "postgres-libpq", dialect: d.Dialect(), dsn: dsn, pool: d.SQL(), inTx: d.InTx}
	}},
	{"postgres-pgx", func(t testing.TB) *env {
		dsn := pgtest.New(t)
		pool, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		pool.SetMaxOpenConns(20)
		t.Cleanup(func() { pool.Close() })
		return &env{name: "postgres-pgx", dialect: dialect.Postgres, dsn: dsn, pool: pool,
			inTx: sqlInTx(pool), opts: []Option{WithListener(dsn)}}
	}},
	{"sqlite", func(t testing.TB) *env {
		d, err := db.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "svc.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return &env{name: "sqlite", dialect: d.Dialect(), pool: d.SQL(), inTx: d.InTx}
	}},
}

// eachBackend runs f once per backend, as subtests.
func eachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

// sqlInTx is db.DB.InTx for a pool db.Open did not make.
func sqlInTx(pool *sql.DB) func(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error {
	return func(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error {
		sqlTx, err := pool.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(ctx, &db.Tx{Tx: sqlTx}); err != nil {
			return errors.Join(err, sqlTx.Rollback())
		}
		return sqlTx.Commit()
	}
}

// queue builds a Queue on e (nil workers: insert-only) and stops it after the
// test.
func (e *env) queue(t testing.TB, workers *river.Workers, opts ...Option) *Queue {
	t.Helper()
	opts = append(append([]Option{withTestOnly(), WithLogger(testLogger(t))}, e.opts...), opts...)
	q, err := newQueue(e.dialect, e.pool, workers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return q
}

// migrated is e.queue after River's migrations and the test's own table.
func (e *env) migrated(t testing.TB, workers *river.Workers, opts ...Option) *Queue {
	t.Helper()
	q := e.queue(t, workers, opts...)
	if err := q.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.ExecContext(t.Context(), `CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return q
}

// count runs a SELECT count(*) query.
func (e *env) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// ph is the dialect's n-th placeholder.
func (e *env) ph(n int) string {
	if e.dialect == dialect.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// waitFor polls cond until it holds or a generous bound passes: a bound on a hang,
// not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// effects counts side effects per job id, as a receiver would see them.
type effects struct {
	mu   sync.Mutex
	byID map[int64]int
	keys map[int64][]string
}

func newEffects() *effects {
	return &effects{byID: map[int64]int{}, keys: map[int64][]string{}}
}

func (f *effects) add(id int64, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[id]++
	f.keys[id] = append(f.keys[id], key)
}

func (f *effects) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.byID {
		n += c
	}
	return n
}

func (f *effects) of(id int64) (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id], append([]string(nil), f.keys[id]...)
}
