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
			d := b.open(t) // default: 3 attempts
			schema(t, d)
			errs, calls := writeSkew(t, d)
			for _, err := range errs {
				if err != nil {
					t.Errorf("serialization failure was not retried: %v", err)
				}
			}
			if calls != 3 {
				t.Errorf("fn ran %d times, want 3 (two transactions, one retried once)", calls)
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
