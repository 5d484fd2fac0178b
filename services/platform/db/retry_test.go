package db_test

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/platform/db"
)

// lockInOppositeOrder runs two transactions that lock parent rows 1 and 2 in
// opposite orders, both holding their first lock before either asks for its
// second, so PostgreSQL must abort one with a deadlock (on the first attempt).
func lockInOppositeOrder(t *testing.T, d *db.DB) []error {
	t.Helper()
	var first sync.WaitGroup
	first.Add(2)
	var attempts atomic.Int32
	run := func(a, b int) error {
		once := true
		return d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			attempts.Add(1)
			if _, err := tx.ExecContext(ctx, `UPDATE parent SET code = code WHERE id = $1`, a); err != nil {
				return err
			}
			if once {
				once = false
				first.Done()
				first.Wait()
			}
			_, err := tx.ExecContext(ctx, `UPDATE parent SET code = code WHERE id = $1`, b)
			return err
		})
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = run(1, 2) }()
	go func() { defer wg.Done(); errs[1] = run(2, 1) }()
	wg.Wait()
	return errs
}

// writeSkew runs two SERIALIZABLE transactions that each read the table and then
// insert into it, both reading before either writes: PostgreSQL must abort one
// with a serialization failure (on the first attempt). It returns how often fn ran.
func writeSkew(t *testing.T, d *db.DB) ([]error, int) {
	t.Helper()
	var read sync.WaitGroup
	read.Add(2)
	var calls atomic.Int32
	run := func(id int) error {
		once := true
		return d.InTxOptions(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable},
			func(ctx context.Context, tx *db.Tx) error {
				calls.Add(1)
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM child`).Scan(&n); err != nil {
					return err
				}
				if once {
					once = false
					read.Done()
					read.Wait()
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO child (id, parent_id) VALUES ($1, 1)`, id+n*10)
				return err
			})
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = run(1) }()
	go func() { defer wg.Done(); errs[1] = run(2) }()
	wg.Wait()
	return errs, int(calls.Load())
}

func TestInTxRetriesConflicts(t *testing.T) {
	for _, b := range pgBackends {
		t.Run(b.name, func(t *testing.T) {
			// A retry can, rarely, meet the other transaction again before it
			// commits; enough attempts make the outcome certain.
			d := b.open(t, db.WithTxAttempts(10))
			schema(t, d)
			errs, calls := writeSkew(t, d)
			for _, err := range errs {
				if err != nil {
					t.Errorf("serialization failure was not retried: %v", err)
				}
			}
			if calls < 3 {
				t.Errorf("fn ran %d times, want at least 3 (two transactions, one retried)", calls)
			}
			var n int
			if err := d.SQL().QueryRow(`SELECT count(*) FROM child`).Scan(&n); err != nil || n != 2 {
				t.Errorf("rows = %d (err %v), want 2", n, err)
			}
			for _, err := range lockInOppositeOrder(t, d) {
				if err != nil {
					t.Errorf("deadlock was not retried: %v", err)
				}
			}
		})
	}
}

// conflict is an error with a PostgreSQL SQLSTATE, as lib/pq and pgx report one.
type conflict string

func (c conflict) Error() string    { return "conflict " + string(c) }
func (c conflict) SQLState() string { return string(c) }

func TestInTxAttempts(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []db.Option
		err   error
		calls int
	}{
		{"default retries serialization failure", nil, conflict("40001"), 3},
		{"default retries deadlock", nil, conflict("40P01"), 3},
		{"bounded by option", []db.Option{db.WithTxAttempts(5)}, conflict("40001"), 5},
		{"off", []db.Option{db.WithTxAttempts(1)}, conflict("40001"), 1},
		{"unique violation is not retried", nil, conflict("23505"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := sqliteBackend.open(t, c.opts...)
			calls := 0
			err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				calls++
				return c.err
			})
			if calls != c.calls {
				t.Errorf("fn ran %d times, want %d", calls, c.calls)
			}
			if err != c.err {
				t.Errorf("InTx = %v, want fn's last error %v", err, c.err)
			}
		})
	}
}

func TestInTxDoesNotRetryOtherErrors(t *testing.T) {
	d := sqliteBackend.open(t)
	schema(t, d)
	calls := 0
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		calls++
		_, err := tx.ExecContext(ctx, `INSERT INTO parent (id, code) VALUES (1, 'dup')`)
		return err
	})
	if db.Code(err) != connect.CodeAlreadyExists || calls != 1 {
		t.Errorf("err=%v calls=%d, want already_exists after 1 call", err, calls)
	}
}
