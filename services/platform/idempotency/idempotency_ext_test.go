package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/request"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a migrated database of each dialect, with a notes table that the
// guarded writes insert into.
func open(t *testing.T) map[string]*db.DB {
	t.Helper()
	ctx := context.Background()
	out := map[string]*db.DB{}
	for name, dsn := range map[string]string{
		"postgres": pgtest.New(t),
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "svc.db"),
	} {
		d, err := db.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		migrate(t, d, idempotency.Migrations)
		if _, err := d.SQL().ExecContext(ctx, `CREATE TABLE notes (body TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		out[name] = d
	}
	return out
}

// migrate applies a Migrations source in version order (a stand-in for the kit's
// migration runner).
func migrate(t *testing.T, d *db.DB, src fs.FS) {
	t.Helper()
	dir := "postgres"
	if d.Dialect() == dialect.SQLite { // "sqlite3"; the folder is sqlite/
		dir = "sqlite"
	}
	files, err := fs.Glob(src, dir+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s migrations: %v", dir, err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(src, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.SQL().Exec(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// writer is a guarded write: it inserts a note and answers with how many times it
// has run.
type writer struct{ runs atomic.Int32 }

func (w *writer) fn(body string) func(context.Context, *db.Tx) (*wrapperspb.StringValue, error) {
	return func(ctx context.Context, tx *db.Tx) (*wrapperspb.StringValue, error) {
		n := w.runs.Add(1)
		if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ($1)`, body); err != nil {
			return nil, err
		}
		return wrapperspb.String(fmt.Sprintf("%s #%d", body, n)), nil
	}
}

func count(t *testing.T, d *db.DB, table string) int {
	t.Helper()
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var key = idempotency.Key{Method: "/trialhub.epro.v1.EproService/SubmitResponse", Caller: "ROLE_PATIENT:p1", Key: "k-1"}

func TestSameKeySameRequestReturnsFirstAnswer(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := idempotency.New()
			var w writer
			first, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a"))
			if err != nil {
				t.Fatal(err)
			}
			again, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a"))
			if err != nil {
				t.Fatal(err)
			}
			if first.GetValue() != "a #1" || !proto.Equal(first, again) {
				t.Errorf("answers %q then %q, want %q twice", first.GetValue(), again.GetValue(), "a #1")
			}
			if first == again {
				t.Error("the replayed answer is the first call's object, want a fresh message")
			}
			if w.runs.Load() != 1 || count(t, d, "notes") != 1 {
				t.Errorf("fn ran %d times, %d notes written; want 1 and 1", w.runs.Load(), count(t, d, "notes"))
			}
		})
	}
}

func TestSameKeyOtherRequestIsAlreadyExists(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := idempotency.New()
			var w writer
			if _, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a")); err != nil {
				t.Fatal(err)
			}
			res, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("b"), w.fn("b"))
			if connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Fatalf("err = %v (code %v), want already_exists", err, connect.CodeOf(err))
			}
			if !strings.Contains(err.Error(), "idempotency_key") {
				t.Errorf("error %q does not name idempotency_key", err)
			}
			if res != nil {
				t.Errorf("answer %v with the error, want nil", res)
			}
			if w.runs.Load() != 1 || count(t, d, "notes") != 1 {
				t.Errorf("fn ran %d times, %d notes; want 1 and 1", w.runs.Load(), count(t, d, "notes"))
			}
		})
	}
}

func TestConcurrentDuplicatesWriteOnce(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := idempotency.New()
			var w writer
			const n = 20
			answers := make([]*wrapperspb.StringValue, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					answers[i], errs[i] = idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a"))
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				if answers[i].GetValue() != "a #1" {
					t.Errorf("request %d answered %q, want %q", i, answers[i].GetValue(), "a #1")
				}
			}
			if w.runs.Load() != 1 || count(t, d, "notes") != 1 {
				t.Errorf("fn ran %d times, %d notes written; want 1 and 1", w.runs.Load(), count(t, d, "notes"))
			}
		})
	}
}

func TestFailedWriteStoresNothing(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := idempotency.New()
			boom := errors.New("boom")
			_, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"),
				func(ctx context.Context, tx *db.Tx) (*wrapperspb.StringValue, error) {
					if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('lost')`); err != nil {
						return nil, err
					}
					return nil, boom
				})
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want fn's error", err)
			}
			if count(t, d, "notes") != 0 || count(t, d, "idempotency_keys") != 0 {
				t.Fatalf("after a failed write: %d notes, %d keys; want 0 and 0", count(t, d, "notes"), count(t, d, "idempotency_keys"))
			}
			var w writer
			res, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a"))
			if err != nil || res.GetValue() != "a #1" {
				t.Fatalf("retry: %v, %v; want a #1", res, err)
			}
		})
	}
}

func TestCallersAreIndependent(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			s := idempotency.New()
			var w writer
			base := request.With(context.Background(), request.Info{Procedure: key.Method})
			for _, sub := range []string{"p1", "p2"} {
				ctx := auth.WithCaller(base, auth.Caller{Subject: sub, Role: authzv1.Role_ROLE_PATIENT})
				if _, err := idempotency.Do(ctx, s, d, idempotency.KeyFor(ctx, "same"), wrapperspb.String(sub), w.fn(sub)); err != nil {
					t.Fatalf("caller %s: %v", sub, err)
				}
			}
			if w.runs.Load() != 2 || count(t, d, "idempotency_keys") != 2 {
				t.Errorf("fn ran %d times, %d keys; want 2 and 2", w.runs.Load(), count(t, d, "idempotency_keys"))
			}
		})
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestExpiredKeyRunsAsNew(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			s := idempotency.New(idempotency.WithTTL(time.Hour), idempotency.WithClock(c.Now))
			var w writer
			if _, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("a"), w.fn("a")); err != nil {
				t.Fatal(err)
			}
			c.Add(59 * time.Minute)
			if _, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("b"), w.fn("b")); connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Fatalf("before expiry: err = %v, want already_exists", err)
			}
			if n, err := s.Purge(ctx, d); err != nil || n != 0 {
				t.Fatalf("Purge before expiry = %d, %v; want 0", n, err)
			}
			c.Add(2 * time.Minute)
			res, err := idempotency.Do(ctx, s, d, key, wrapperspb.String("b"), w.fn("b"))
			if err != nil || res.GetValue() != "b #2" {
				t.Fatalf("after expiry: %v, %v; want b #2", res, err)
			}
			c.Add(2 * time.Hour)
			if n, err := s.Purge(ctx, d); err != nil || n != 1 {
				t.Fatalf("Purge after expiry = %d, %v; want 1", n, err)
			}
			if count(t, d, "idempotency_keys") != 0 {
				t.Error("an expired key is left after Purge")
			}
		})
	}
}

func TestEmptyKeyOnlyRuns(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			var w writer
			k := key
			k.Key = ""
			for range 2 {
				if _, err := idempotency.Do(context.Background(), idempotency.New(), d, k, wrapperspb.String("a"), w.fn("a")); err != nil {
					t.Fatal(err)
				}
			}
			if w.runs.Load() != 2 || count(t, d, "idempotency_keys") != 0 {
				t.Errorf("fn ran %d times, %d keys stored; want 2 and 0", w.runs.Load(), count(t, d, "idempotency_keys"))
			}
		})
	}
}

func TestKeyFor(t *testing.T) {
	ctx := request.With(context.Background(), request.Info{Procedure: "/x.v1.S/M"})
	if got, want := idempotency.KeyFor(ctx, "k"), (idempotency.Key{Method: "/x.v1.S/M", Caller: "anonymous", Key: "k"}); got != want {
		t.Errorf("anonymous: %+v, want %+v", got, want)
	}
	ctx = auth.WithCaller(ctx, auth.Caller{Subject: "s-9", Role: authzv1.Role_ROLE_INVESTIGATOR})
	if got, want := idempotency.KeyFor(ctx, "k"), (idempotency.Key{Method: "/x.v1.S/M", Caller: "ROLE_INVESTIGATOR:s-9", Key: "k"}); got != want {
		t.Errorf("investigator: %+v, want %+v", got, want)
	}
}
