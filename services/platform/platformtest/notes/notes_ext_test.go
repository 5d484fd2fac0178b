package notes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"entgo.io/ent/dialect"
	"github.com/riverqueue/river/rivertype"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/jobs"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends runs a test on PostgreSQL through each driver (pgx, the default, and
// lib/pq) and on SQLite, the databases a service runs on.
func backends(t *testing.T, test func(t *testing.T, backend platformtest.Option)) {
	t.Run("postgres", func(t *testing.T) { t.Parallel(); test(t, platformtest.WithDSN(pgtest.New(t))) })
	t.Run("postgres-libpq", func(t *testing.T) {
		t.Parallel()
		test(t, platformtest.All(platformtest.WithDSN(pgtest.New(t)), platformtest.WithDBOptions(db.WithPostgresDriver(db.LibPQ))))
	})
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); test(t, platformtest.WithSQLite()) })
}

func addNote(ctx context.Context, c *connect.Client, fields map[string]any) (*structpb.Struct, error) {
	req, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, err
	}
	res := &structpb.Struct{}
	return res, c.CallUnary(ctx, notes.Spec(notes.AddNoteProcedure), req, res)
}

func count(t *testing.T, d *db.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.ReadSQL().QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// eventually polls cond until it holds, failing after a generous bound: River
// works jobs in the background, so their effects are awaited, not timed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A write commits its row, audit event, idempotency record and job together, and
// the job is worked; a write that fails after writing all of them leaves none.
func TestWriteAndItsJobCommitTogether(t *testing.T) {
	backends(t, func(t *testing.T, backend platformtest.Option) {
		ctx := context.Background()
		env := platformtest.Start(t, notes.Service("a"), backend)
		c := env.ClientOver(t, platformtest.Admin(), client.ProtocolConnect)
		d := env.DB(t)

		_, err := addNote(ctx, c, map[string]any{"text": "never kept", "idempotency_key": "k-rollback", "rollback": true})
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("rolled-back AddNote: %v, want failed_precondition", err)
		}
		for what, query := range map[string]string{
			"notes":            "SELECT COUNT(*) FROM notes",
			"jobs":             "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added'",
			"audit events":     "SELECT COUNT(*) FROM audit_events",
			"idempotency keys": "SELECT COUNT(*) FROM idempotency_keys",
		} {
			if n := count(t, d, query); n != 0 {
				t.Errorf("after a rolled-back write there are %d %s, want 0", n, what)
			}
		}

		res, err := addNote(ctx, c, map[string]any{"text": "kept", "idempotency_key": "k-1"})
		if err != nil {
			t.Fatal(err)
		}
		id := res.Fields["id"].GetStringValue()
		if n := count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added'"); n != 1 {
			t.Fatalf("jobs after one write: %d, want 1", n)
		}
		eventually(t, "the NoteAdded job to be worked", func() bool {
			return count(t, d, "SELECT COUNT(*) FROM note_deliveries WHERE note_id = $1", id) == 1
		})
		if n := count(t, d, "SELECT COUNT(*) FROM audit_events WHERE record_id = $1", id); n != 1 {
			t.Errorf("audit events of the note: %d, want 1", n)
		}
		// Every service also runs the kit's periodic purge of expired idempotency keys.
		eventually(t, "the kit's purge of expired idempotency keys to run", func() bool {
			return count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'platform.purge_idempotency_keys' AND state = 'completed'") >= 1
		})
	})
}

// Two replicas on one database (two processes, each with its River workers) work
// every job exactly once.
func TestTwoReplicasWorkEachJobOnce(t *testing.T) {
	backends(t, func(t *testing.T, backend platformtest.Option) {
		ctx := context.Background()
		signer := platformtest.NewSigner(t)
		a := platformtest.Start(t, notes.Service("a"), backend, platformtest.WithSigner(signer))
		b := platformtest.Start(t, notes.Service("b"), platformtest.WithDSN(a.DSN), platformtest.WithSigner(signer))
		clients := []*connect.Client{a.Client(t, platformtest.Admin()), b.Client(t, platformtest.Admin())}
		const n = 60
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := addNote(ctx, clients[i%2], map[string]any{"text": fmt.Sprintf("note %d", i)})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		d := a.DB(t)
		eventually(t, "every job to be worked", func() bool {
			return count(t, d, "SELECT COUNT(DISTINCT note_id) FROM note_deliveries") == n
		})
		// Give a duplicate delivery the chance to show before counting.
		eventually(t, "every job to be completed", func() bool {
			return count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added' AND state = 'completed'") == n
		})
		if got := count(t, d, "SELECT COUNT(*) FROM note_deliveries"); got != n {
			t.Fatalf("%d deliveries for %d notes: a job was worked twice", got, n)
		}
	})
}

// A job that keeps failing ends discarded (a dead letter) with every attempt's
// error, and an admin can re-queue it.
func TestFailingJobEndsDiscardedWithItsErrors(t *testing.T) {
	backends(t, func(t *testing.T, backend platformtest.Option) {
		ctx := context.Background()
		env := platformtest.Start(t, notes.Service("a"), backend, platformtest.WithJobOptions(
			jobs.WithMaxAttempts(3),
			jobs.WithRetryPolicy(immediateRetry{}),
		))
		d := env.DB(t)
		if _, err := addNote(ctx, env.Client(t, platformtest.Admin()), map[string]any{"text": "doomed", "fail_job": true}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the job to be discarded", func() bool {
			return count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added' AND state = 'discarded'") == 1
		})
		// The dead letter is visible through the kit, with every attempt's error.
		q, err := jobs.New(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		dead, err := q.Discarded(ctx, 10, nil)
		if err != nil || len(dead.Jobs) != 1 {
			t.Fatalf("discarded jobs: %v, %v: want one", dead, err)
		}
		job := dead.Jobs[0]
		if len(job.Errors) != 3 {
			t.Fatalf("discarded job has %d errors, want 3: %+v", len(job.Errors), job.Errors)
		}
		for i, a := range job.Errors {
			if a.Attempt != i+1 || !strings.Contains(a.Error, notes.ErrAlwaysFails.Error()) {
				t.Errorf("error %d = %+v, want attempt %d with %q", i, a, i+1, notes.ErrAlwaysFails)
			}
		}
		// Re-queued, it runs again (and fails again: the dead letter comes back).
		if _, err := q.Retry(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the re-queued job to run again", func() bool {
			return count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added' AND state = 'discarded' AND attempt = 4") == 1
		})
	})
}

// immediateRetry retries a failed job at once, so a test reaches the last attempt
// without waiting for River's backoff.
type immediateRetry struct{}

func (immediateRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// 20 concurrent requests with one idempotency key make one row and 20 identical
// answers.
func TestConcurrentRetriesWithOneKeyWriteOnce(t *testing.T) {
	backends(t, func(t *testing.T, backend platformtest.Option) {
		ctx := context.Background()
		env := platformtest.Start(t, notes.Service("a"), backend)
		c := env.Client(t, platformtest.Admin())
		const n = 20
		answers := make([]*structpb.Struct, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				answers[i], errs[i] = addNote(ctx, c, map[string]any{"text": "once", "idempotency_key": "retry-7"})
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if !proto.Equal(answers[i], answers[0]) {
				t.Errorf("answer %d = %v, want %v", i, answers[i], answers[0])
			}
		}
		d := env.DB(t)
		if got := count(t, d, "SELECT COUNT(*) FROM notes"); got != 1 {
			t.Fatalf("%d notes for %d requests with one key, want 1", got, n)
		}
		if got := count(t, d, "SELECT COUNT(*) FROM river_job WHERE kind = 'notes.note_added'"); got != 1 {
			t.Errorf("%d jobs for one write, want 1", got)
		}
		// The same key with another body is refused.
		_, err := addNote(ctx, c, map[string]any{"text": "something else", "idempotency_key": "retry-7"})
		if connect.CodeOf(err) != connect.CodeAlreadyExists {
			t.Errorf("same key, other body: %v, want already_exists", err)
		}
	})
}

// 50 concurrent audited writes leave one unbroken chain, and a row changed in the
// database behind the service's back is caught at that row.
func TestAuditChainUnbrokenUnderConcurrencyAndTamperingCaught(t *testing.T) {
	backends(t, func(t *testing.T, backend platformtest.Option) {
		ctx := context.Background()
		env := platformtest.Start(t, notes.Service("a"), backend)
		c := env.Client(t, platformtest.Investigator("site-1"))
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := addNote(ctx, c, map[string]any{"text": fmt.Sprintf("audited %d", i)})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		d := env.DB(t)
		log := audit.New()
		rep, err := log.Verify(ctx, d, audit.Range{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Intact || rep.Checked != n || rep.LastSequence != n {
			t.Fatalf("after %d concurrent writes: %+v, want an intact chain of %d", n, rep, n)
		}
		entries, _, err := log.List(ctx, d, audit.Filter{}, 1, "")
		if err != nil || len(entries) != 1 || entries[0].Actor.ID != "test-investigator" || entries[0].Procedure != notes.AddNoteProcedure {
			t.Fatalf("first entry: %+v, %v: want the investigator and the procedure recorded", entries, err)
		}

		tamper(t, d, `UPDATE audit_events SET record_id = 'someone-else' WHERE sequence = 17`)
		rep, err = log.Verify(ctx, d, audit.Range{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Intact || rep.FirstBroken != 17 || rep.Kind != audit.BreakHashMismatch {
			t.Fatalf("after changing row 17: %+v, want broken at 17 (hash mismatch)", rep)
		}
	})
}

// tamper changes the audit table as someone with direct database access would,
// past the append-only triggers.
func tamper(t *testing.T, d *db.DB, q string) {
	t.Helper()
	ctx := context.Background()
	stmts := []string{`DROP TRIGGER audit_events_no_update`, q}
	if d.Dialect() == dialect.Postgres {
		stmts = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, q, `ALTER TABLE audit_events ENABLE TRIGGER USER`}
	}
	for _, s := range stmts {
		if _, err := d.SQL().ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A request is authorized by the method's rule like any contract method.
func TestRulesApply(t *testing.T) {
	env := platformtest.Start(t, notes.Service("a"), platformtest.WithSQLite())
	_, err := addNote(context.Background(), env.Client(t, platformtest.Analyst()), map[string]any{"text": "x"})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("analyst AddNote: %v, want permission_denied", err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a connect error: %v", err)
	}
}
