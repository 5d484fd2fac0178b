package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// schema creates parent/child tables in the backend's dialect.
func schema(t *testing.T, d *db.DB) {
	t.Helper()
	stmts := []string{
		`CREATE TABLE parent (id integer PRIMARY KEY, code text NOT NULL UNIQUE)`,
		`CREATE TABLE child (id integer PRIMARY KEY, parent_id integer NOT NULL REFERENCES parent(id))`,
		`INSERT INTO parent (id, code) VALUES (1, 'a'), (2, 'b')`,
	}
	for _, s := range stmts {
		if _, err := d.SQL().Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

// mustFail runs a statement that must fail and returns its error.
func mustFail(t *testing.T, err error) error {
	t.Helper()
	if err == nil {
		t.Fatal("statement succeeded, want an error")
	}
	return err
}

func assertCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if got := db.Code(err); got != want {
		t.Errorf("Code(%v) = %v, want %v", err, got, want)
	}
	ce := new(connect.Error)
	if !errors.As(db.ConnectError(fmt.Errorf("wrapped: %w", err), "widget"), &ce) {
		t.Fatalf("ConnectError is not a *connect.Error")
	}
	if ce.Code() != want {
		t.Errorf("ConnectError code = %v, want %v", ce.Code(), want)
	}
	if !errors.Is(ce, err) {
		t.Errorf("ConnectError lost its cause %v", err)
	}
	if !strings.HasPrefix(ce.Message(), "widget") {
		t.Errorf("ConnectError message %q does not name what failed", ce.Message())
	}
	for _, leak := range []string{"SELECT", "INSERT", "parent", "child", "pq:", "SQLSTATE", "sqlite"} {
		if strings.Contains(ce.Message(), leak) {
			t.Errorf("ConnectError message %q leaks %q", ce.Message(), leak)
		}
	}
}

func TestCodeOfProvokedErrors(t *testing.T) {
	for _, b := range allBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t)
			schema(t, d)
			var id int
			q := func(s string) string {
				if d.Dialect() == "postgres" {
					return s
				}
				return strings.NewReplacer("$1", "?", "$2", "?").Replace(s)
			}
			t.Run("no rows", func(t *testing.T) {
				err := mustFail(t, d.ReadSQL().QueryRowContext(ctx, q(`SELECT id FROM parent WHERE id = $1`), 99).Scan(&id))
				assertCode(t, err, connect.CodeNotFound)
			})
			t.Run("unique", func(t *testing.T) {
				_, err := d.SQL().ExecContext(ctx, `INSERT INTO parent (id, code) VALUES (3, 'a')`)
				assertCode(t, mustFail(t, err), connect.CodeAlreadyExists)
			})
			t.Run("primary key", func(t *testing.T) {
				_, err := d.SQL().ExecContext(ctx, `INSERT INTO parent (id, code) VALUES (1, 'z')`)
				assertCode(t, mustFail(t, err), connect.CodeAlreadyExists)
			})
			t.Run("foreign key", func(t *testing.T) {
				_, err := d.SQL().ExecContext(ctx, `INSERT INTO child (id, parent_id) VALUES (1, 99)`)
				assertCode(t, mustFail(t, err), connect.CodeFailedPrecondition)
			})
			t.Run("foreign key inside InTx", func(t *testing.T) {
				err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO child (id, parent_id) VALUES (2, 98)`)
					return err
				})
				assertCode(t, mustFail(t, err), connect.CodeFailedPrecondition)
			})
			t.Run("syntax error is internal", func(t *testing.T) {
				_, err := d.SQL().ExecContext(ctx, `INSERT INTO parent VALUES oops`)
				assertCode(t, mustFail(t, err), connect.CodeInternal)
			})
			long := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`
			if d.Dialect() == "postgres" {
				long = `SELECT 1 FROM pg_sleep(30)`
			}
			// A statement stopped by its context, through each of the kit's paths.
			via := map[string]func(ctx context.Context) error{
				"InTx": func(ctx context.Context) error {
					return d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
						return tx.QueryRowContext(ctx, long).Scan(&id)
					})
				},
				"Driver": func(ctx context.Context) error {
					rows := &entRows{}
					if err := d.Driver().Query(ctx, long, []any{}, rows.r()); err != nil {
						return err
					}
					_, err := rows.count()
					return err
				},
			}
			for name, run := range via {
				t.Run("deadline via "+name, func(t *testing.T) {
					tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
					defer cancel()
					assertCode(t, mustFail(t, run(tctx)), connect.CodeDeadlineExceeded)
				})
				t.Run("canceled via "+name, func(t *testing.T) {
					cctx, cancel := context.WithCancel(ctx)
					time.AfterFunc(100*time.Millisecond, cancel)
					assertCode(t, mustFail(t, run(cctx)), connect.CodeCanceled)
				})
			}
			t.Run("deadline via ReadSQL", func(t *testing.T) {
				tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				err := mustFail(t, d.ReadSQL().QueryRowContext(tctx, long).Scan(&id))
				want := connect.CodeDeadlineExceeded
				if b.name == "postgres-pq" {
					// lib/pq reports only "query canceled" (57014); documented on Code.
					want = connect.CodeCanceled
				}
				assertCode(t, err, want)
			})
		})
	}
}

func TestCodeOfPostgresConflicts(t *testing.T) {
	for _, b := range pgBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := b.open(t, db.WithTxAttempts(1))
			schema(t, d)
			t.Run("deadlock", func(t *testing.T) {
				errs := lockInOppositeOrder(t, d)
				var failed []error
				for _, err := range errs {
					if err != nil {
						failed = append(failed, err)
					}
				}
				if len(failed) != 1 {
					t.Fatalf("errors = %v, want exactly one deadlock", errs)
				}
				assertCode(t, failed[0], connect.CodeAborted)
			})
			t.Run("serialization failure", func(t *testing.T) {
				errs, _ := writeSkew(t, d)
				var failed []error
				for _, err := range errs {
					if err != nil {
						failed = append(failed, err)
					}
				}
				if len(failed) != 1 {
					t.Fatalf("errors = %v, want exactly one serialization failure", errs)
				}
				assertCode(t, failed[0], connect.CodeAborted)
			})
			t.Run("admin shutdown", func(t *testing.T) {
				conn, err := d.SQL().Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				var pid int
				if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
					t.Fatal(err)
				}
				if _, err := d.SQL().ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
					t.Fatal(err)
				}
				var n int
				err = mustFail(t, conn.QueryRowContext(ctx, `SELECT 1`).Scan(&n))
				assertCode(t, err, connect.CodeUnavailable)
			})
		})
	}
}

func TestCodeOfConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, drv := range []db.PostgresDriver{db.LibPQ, db.PGX} {
		t.Run(string(drv), func(t *testing.T) {
			_, err := db.Open(context.Background(), "postgres://u@"+addr+"/x?sslmode=disable", db.WithPostgresDriver(drv))
			assertCode(t, mustFail(t, err), connect.CodeUnavailable)
		})
	}
}

func TestCodeOfSQLiteBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "svc.db")
	d, err := db.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Another process's connection with no busy timeout meets our open write
	// transaction.
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var busy error
	if err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE t (x integer)`); err != nil {
			return err
		}
		otx, err := other.BeginTx(ctx, nil)
		if err == nil {
			otx.Rollback()
		}
		busy = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	assertCode(t, mustFail(t, busy), connect.CodeAborted)
}

// NotFoundError has the shape of every ent-generated package's NotFoundError.
type NotFoundError struct{ label string }

func (e *NotFoundError) Error() string { return "ent: " + e.label + " not found" }

// otherNotFound is a type of the same name elsewhere: <pkg>.NotFoundError whose
// text is not ent's.
type notFoundLookalike struct{}

func (notFoundLookalike) Error() string { return "ent: visit not found" }

func TestCodeOfEntNotFound(t *testing.T) {
	assertCode(t, fmt.Errorf("get visit: %w", &NotFoundError{label: "visit"}), connect.CodeNotFound)
	if got := db.Code(errors.New("ent: visit not found")); got != connect.CodeInternal {
		t.Errorf("plain text error = %v, want internal (only ent's type counts)", got)
	}
	if got := db.Code(notFoundLookalike{}); got != connect.CodeInternal {
		t.Errorf("lookalike type = %v, want internal", got)
	}
}

func TestConnectErrorKeepsConnectErrors(t *testing.T) {
	orig := connect.NewError(connect.CodePermissionDenied, "not yours")
	if got := db.ConnectError(orig, "visit"); got != error(orig) {
		t.Errorf("ConnectError replaced a *connect.Error: %v", got)
	}
	if db.ConnectError(nil, "visit") != nil {
		t.Error("ConnectError(nil) is not nil")
	}
}

// TestCodeOfServerCrash: the server dies under a statement in flight and under
// the pool's idle connections (pg_ctl stop -m immediate), and refuses new ones
// until it is back. Every error a caller meets meanwhile is unavailable, on both
// drivers, through each of the kit's paths.
func TestCodeOfServerCrash(t *testing.T) {
	cluster := pgtest.Dedicated(t)
	admin, err := sql.Open("postgres", cluster.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, drv := range []db.PostgresDriver{db.LibPQ, db.PGX} {
		t.Run(string(drv), func(t *testing.T) {
			ctx := context.Background()
			d, err := db.Open(ctx, cluster.URL, db.WithPostgresDriver(drv))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// Warm the pool: idle connections the crash will break.
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() { _, _ = d.SQL().ExecContext(ctx, `SELECT pg_sleep(0.05)`) })
			}
			wg.Wait()
			inFlight := make(chan error, 2)
			go func() {
				_, err := d.SQL().ExecContext(ctx, `SELECT pg_sleep(30)`)
				inFlight <- err
			}()
			go func() {
				inFlight <- d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					_, err := tx.ExecContext(ctx, `SELECT pg_sleep(30)`)
					return err
				})
			}()
			time.Sleep(200 * time.Millisecond)
			if err := cluster.Down(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := cluster.Up(ctx); err != nil {
					t.Fatal(err)
				}
			}()
			for range 2 {
				assertCode(t, mustFail(t, <-inFlight), connect.CodeUnavailable)
			}
			// Broken idle connections first, then refused new ones.
			for i := range 6 {
				var n int
				err := d.ReadSQL().QueryRowContext(ctx, `SELECT 1`).Scan(&n)
				t.Run(fmt.Sprint("read ", i), func(t *testing.T) { assertCode(t, mustFail(t, err), connect.CodeUnavailable) })
				err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
					_, err := tx.ExecContext(ctx, `SELECT 1`)
					return err
				})
				t.Run(fmt.Sprint("tx ", i), func(t *testing.T) { assertCode(t, mustFail(t, err), connect.CodeUnavailable) })
			}
		})
	}
}
