package db_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform/db"
)

func openSQLite(t *testing.T, opts ...db.Option) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "svc.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.SQL().Exec(`CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return d
}

// A read outside a transaction must not wait for an open write transaction to end
// (defect 8: with one connection it waited for its whole deadline).
func TestSQLiteReadBesideOpenWrite(t *testing.T) {
	d := openSQLite(t)
	ctx := context.Background()
	if _, err := d.SQL().Exec(`INSERT INTO item (name) VALUES ('committed')`); err != nil {
		t.Fatal(err)
	}
	inTx := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO item (name) VALUES ('pending')`); err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx
	// Generous bound: the read must finish while the writer still holds its
	// transaction, i.e. without waiting for it.
	readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n int
	errRead := d.ReadSQL().QueryRowContext(readCtx, `SELECT count(*) FROM item`).Scan(&n)
	var nEnt int
	rows := &entRows{}
	errEnt := d.Driver().Query(readCtx, `SELECT count(*) FROM item`, []any{}, rows.r())
	if errEnt == nil {
		nEnt, errEnt = rows.count()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("write transaction: %v", err)
	}
	if errRead != nil {
		t.Fatalf("read beside an open write transaction: %v", errRead)
	}
	if n != 1 {
		t.Errorf("read saw %d rows, want 1 (the committed one, not the pending one)", n)
	}
	if errEnt != nil || nEnt != 1 {
		t.Errorf("ent driver read beside an open write: n=%d err=%v, want 1, nil", nEnt, errEnt)
	}
}

// Many goroutines writing at once all succeed: no SQLITE_BUSY reaches the caller.
func TestSQLiteConcurrentWriters(t *testing.T) {
	d := openSQLite(t)
	ctx := context.Background()
	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var err error
				if i%2 == 0 {
					err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
						_, err := tx.ExecContext(ctx, `INSERT INTO item (name) VALUES (?)`, fmt.Sprintf("tx-%d-%d", w, i))
						return err
					})
				} else {
					// Writes through the ent driver outside a transaction go to the writer.
					err = d.Driver().Exec(ctx, `INSERT INTO item (name) VALUES (?)`, []any{fmt.Sprintf("ent-%d-%d", w, i)}, nil)
				}
				if err != nil {
					errs <- err
				}
				var n int
				if err := d.ReadSQL().QueryRowContext(ctx, `SELECT count(*) FROM item`).Scan(&n); err != nil {
					errs <- fmt.Errorf("read: %w", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := d.ReadSQL().QueryRow(`SELECT count(*) FROM item`).Scan(&n); err != nil || n != writers*each {
		t.Fatalf("rows = %d (err %v), want %d", n, err, writers*each)
	}
}

// Pool sizes are options.
func TestSQLitePoolOptions(t *testing.T) {
	d := openSQLite(t, db.WithReadConns(3))
	if got := d.SQL().Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	if got := d.ReadSQL().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("reader MaxOpenConnections = %d, want 3", got)
	}
}

// The read pool is read-only: a write sent to it fails instead of racing the writer.
func TestSQLiteReadPoolRefusesWrites(t *testing.T) {
	d := openSQLite(t)
	if _, err := d.ReadSQL().Exec(`INSERT INTO item (name) VALUES ('x')`); err == nil {
		t.Fatal("write through ReadSQL succeeded")
	}
	// The ent driver sends it to the writer instead.
	if err := d.Driver().Exec(context.Background(), `INSERT INTO item (name) VALUES ('x')`, []any{}, nil); err != nil {
		t.Fatal(err)
	}
}
