package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/trialhub/trialhub/services/platform/db"
)

// notifyArgs is a job that calls another service.
type notifyArgs struct {
	Item int `json:"item"`
}

func (notifyArgs) Kind() string { return "test_notify" }

// recordWorker records each attempt as a side effect and fails while fail says so.
func recordWorker(f *effects, fail func(job *river.Job[notifyArgs]) error) river.Worker[notifyArgs] {
	return river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
		f.add(job.ID, Key(job.JobRow))
		if fail != nil {
			return fail(job)
		}
		return nil
	})
}

func jobState(t *testing.T, q *Queue, id int64) *rivertype.JobRow {
	t.Helper()
	job, err := q.Client().JobGet(t.Context(), id)
	if err != nil {
		t.Fatalf("get job %d: %v", id, err)
	}
	return job
}

// A job inserted in a write's transaction commits with it, and an insert-only
// Queue (a handler's) enqueues what a working Queue (built before its workers
// were added) then works.
func TestInsertTxCommitsWithTheWrite(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		handlers := e.migrated(t, nil)
		if err := handlers.Start(ctx); err != nil {
			t.Fatalf("insert-only Start: %v", err)
		}

		var id int64
		err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO items (id, name) VALUES (1, 'visit')"); err != nil {
				return err
			}
			res, err := handlers.InsertTx(ctx, tx, notifyArgs{Item: 1}, nil)
			if err != nil {
				return err
			}
			id = res.Job.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "SELECT count(*) FROM items"); n != 1 {
			t.Fatalf("items = %d, want 1", n)
		}
		if got := jobState(t, handlers, id); got.State != rivertype.JobStateAvailable || got.Kind != "test_notify" {
			t.Fatalf("job after commit: state %s kind %s, want available test_notify", got.State, got.Kind)
		}

		workers := river.NewWorkers()
		worker := e.queue(t, workers)
		f := newEffects()
		river.AddWorker(workers, recordWorker(f, nil))
		if err := worker.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the job to complete", func() bool { return jobState(t, worker, id).State == rivertype.JobStateCompleted })
		if n, keys := f.of(id); n != 1 || keys[0] != Key(jobState(t, worker, id)) {
			t.Fatalf("worked %d times with keys %v, want once with the job's key", n, keys)
		}
	})
}

func TestInsertTxRolledBackEnqueuesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		q := e.migrated(t, nil)
		refused := errors.New("validation failed after the insert")
		err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO items (id, name) VALUES (1, 'visit')"); err != nil {
				return err
			}
			if _, err := q.InsertTx(ctx, tx, notifyArgs{Item: 1}, nil); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Fatalf("InTx = %v, want the refusal", err)
		}
		if n := e.count(t, "SELECT count(*) FROM items"); n != 0 {
			t.Fatalf("items = %d, want 0", n)
		}
		if n := e.count(t, "SELECT count(*) FROM river_job"); n != 0 {
			t.Fatalf("river_job rows = %d, want 0", n)
		}
	})
}

// Two processes (two Queues) on one database work every job exactly once.
func TestTwoProcessesWorkEachJobOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		const jobs = 200
		f := newEffects()
		var mu sync.Mutex
		byClient := map[string]int{}
		var queues []*Queue
		for i := range 2 {
			workers := river.NewWorkers()
			q := e.migrated(t, workers, WithID(fmt.Sprintf("process-%d", i)), WithQueues(map[string]int{river.QueueDefault: 4}))
			id := fmt.Sprintf("process-%d", i)
			river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
				f.add(job.ID, Key(job.JobRow))
				mu.Lock()
				byClient[id]++
				mu.Unlock()
				return nil
			}))
			queues = append(queues, q)
		}
		for _, q := range queues {
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for i := range jobs {
			err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := queues[i%2].InsertTx(ctx, tx, notifyArgs{Item: i}, nil)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every job to complete", func() bool {
			return e.count(t, "SELECT count(*) FROM river_job WHERE state = 'completed'") == jobs
		})
		if got := f.total(); got != jobs {
			t.Fatalf("side effects = %d, want %d (one per job)", got, jobs)
		}
		f.mu.Lock()
		for id, n := range f.byID {
			if n != 1 {
				t.Errorf("job %d worked %d times", id, n)
			}
		}
		distinct := map[string]bool{}
		for _, keys := range f.keys {
			distinct[keys[0]] = true
		}
		f.mu.Unlock()
		if len(distinct) != jobs {
			t.Errorf("distinct idempotency keys = %d, want %d", len(distinct), jobs)
		}
		t.Logf("jobs worked per process: %v", byClient)
	})
}

// fastRetry retries at once, so a failing job uses its attempts quickly.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// A job that keeps failing ends discarded with one error per attempt and the same
// key on every attempt; Retry re-queues it and it completes, still with that key.
func TestFailingJobIsDiscardedAndRetried(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		workers := river.NewWorkers()
		q := e.migrated(t, workers, WithRetryPolicy(fastRetry{}), WithMaxAttempts(3))
		f := newEffects()
		var mu sync.Mutex
		receiverUp := false
		river.AddWorker(workers, recordWorker(f, func(job *river.Job[notifyArgs]) error {
			mu.Lock()
			defer mu.Unlock()
			if !receiverUp {
				return fmt.Errorf("receiver unavailable (attempt %d)", job.Attempt)
			}
			return nil
		}))
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			res, err := q.InsertTx(ctx, tx, notifyArgs{Item: 7}, nil)
			if res != nil {
				id = res.Job.ID
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}

		var dead *river.JobListResult
		waitFor(t, "the job to be discarded", func() bool {
			var err error
			dead, err = q.Discarded(ctx, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			return len(dead.Jobs) == 1
		})
		job := dead.Jobs[0]
		if job.ID != id || job.Attempt != 3 || len(job.Errors) != 3 {
			t.Fatalf("dead letter: id %d attempt %d errors %d, want id %d, 3 attempts, 3 errors", job.ID, job.Attempt, len(job.Errors), id)
		}
		for i, je := range job.Errors {
			if want := fmt.Sprintf("receiver unavailable (attempt %d)", i+1); je.Error != want || je.Attempt != i+1 {
				t.Errorf("error %d = attempt %d %q, want attempt %d %q", i, je.Attempt, je.Error, i+1, want)
			}
		}
		n, keys := f.of(id)
		if n != 3 {
			t.Fatalf("attempts seen by the receiver = %d, want 3", n)
		}
		for _, k := range keys {
			if k != keys[0] || k == "" || k != Key(job) {
				t.Fatalf("keys per attempt %v, want one key, the job's %q", keys, Key(job))
			}
		}

		mu.Lock()
		receiverUp = true
		mu.Unlock()
		if _, err := q.Retry(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the re-queued job to complete", func() bool { return jobState(t, q, id).State == rivertype.JobStateCompleted })
		if n, keys := f.of(id); n != 4 || keys[3] != keys[0] {
			t.Fatalf("after Retry: %d attempts, keys %v; want 4, all the same", n, keys)
		}
		if dead, err := q.Discarded(ctx, 0, nil); err != nil || len(dead.Jobs) != 0 {
			t.Fatalf("dead letters after Retry: %v, %v; want none", dead, err)
		}
	})
}

// A job whose process died while working it (left running, attempted long ago) is
// rescued by another process and completed once, with the key it was inserted with.
func TestDeadWorkersJobIsRescued(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		q := e.migrated(t, nil)
		var id int64
		var key string
		if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			res, err := q.InsertTx(ctx, tx, notifyArgs{Item: 3}, nil)
			if res != nil {
				id, key = res.Job.ID, Key(res.Job)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// What a process leaves behind when it dies mid-job.
		died := `UPDATE river_job SET state = 'running', attempt = 1,
			attempted_at = now() - interval '2 hours', attempted_by = ARRAY['dead-process'] WHERE id = $1`
		if e.dialect == dialect.SQLite {
			died = `UPDATE river_job SET state = 'running', attempt = 1,
				attempted_at = datetime('now', 'subsec', '-2 hours'), attempted_by = json('["dead-process"]') WHERE id = ?`
		}
		if _, err := e.pool.ExecContext(ctx, died, id); err != nil {
			t.Fatal(err)
		}

		workers := river.NewWorkers()
		f := newEffects()
		river.AddWorker(workers, recordWorker(f, nil))
		other := e.queue(t, workers, WithRescueStuckAfter(time.Hour), WithRetryPolicy(fastRetry{}))
		if err := other.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the rescued job to complete", func() bool { return jobState(t, other, id).State == rivertype.JobStateCompleted })
		job := jobState(t, other, id)
		if n, keys := f.of(id); n != 1 || keys[0] != key || job.Attempt != 2 {
			t.Fatalf("rescued job: worked %d times here with keys %v, attempt %d; want once, key %q, attempt 2", n, keys, job.Attempt, key)
		}
	})
}

// stubClock is a clock a test moves forward.
type stubClock struct {
	mu sync.Mutex
	at *time.Time
}

func (c *stubClock) Now() time.Time {
	if at := c.NowOrNil(); at != nil {
		return *at
	}
	return time.Now()
}

func (c *stubClock) NowOrNil() *time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		return nil
	}
	at := *c.at
	return &at
}

func (c *stubClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = &at
}

// A scheduled job (a reminder) is not worked before its time: a job inserted
// after it but due now runs first, and it runs once the clock passes its time.
func TestScheduledJobWaitsForItsTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		clock := &stubClock{}
		start := time.Now().UTC().Truncate(time.Millisecond)
		clock.set(start)
		workers := river.NewWorkers()
		q := e.migrated(t, workers, WithClock(clock))
		var mu sync.Mutex
		var order []int
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, job.Args.Item)
			return nil
		}))
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var reminder, now int64
		if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			r, err := q.InsertTx(ctx, tx, notifyArgs{Item: 1}, &river.InsertOpts{ScheduledAt: start.Add(time.Hour)})
			if err != nil {
				return err
			}
			n, err := q.InsertTx(ctx, tx, notifyArgs{Item: 2}, nil)
			if err != nil {
				return err
			}
			reminder, now = r.Job.ID, n.Job.ID
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the due job to complete", func() bool { return jobState(t, q, now).State == rivertype.JobStateCompleted })
		if st := jobState(t, q, reminder).State; st != rivertype.JobStateScheduled {
			t.Fatalf("reminder state while its time is ahead = %s, want scheduled", st)
		}
		clock.set(start.Add(time.Hour + time.Second))
		waitFor(t, "the reminder to complete", func() bool { return jobState(t, q, reminder).State == rivertype.JobStateCompleted })
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 2 || order[0] != 2 || order[1] != 1 {
			t.Fatalf("work order = %v, want [2 1] (the due job, then the reminder)", order)
		}
	})
}

type reminderArgs struct {
	Visit string `json:"visit"`
}

func (reminderArgs) Kind() string { return "test_reminder" }

// A unique job inserted twice (a retried request) exists once.
func TestUniqueJobsDedupe(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		q := e.migrated(t, nil)
		opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
		var results []*rivertype.JobInsertResult
		for _, visit := range []string{"v1", "v1", "v2"} {
			if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				res, err := q.InsertTx(ctx, tx, reminderArgs{Visit: visit}, opts)
				results = append(results, res)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if results[0].UniqueSkippedAsDuplicate || !results[1].UniqueSkippedAsDuplicate || results[2].UniqueSkippedAsDuplicate {
			t.Fatalf("skipped as duplicate = %v %v %v, want false true false",
				results[0].UniqueSkippedAsDuplicate, results[1].UniqueSkippedAsDuplicate, results[2].UniqueSkippedAsDuplicate)
		}
		if results[1].Job.ID != results[0].Job.ID || results[2].Job.ID == results[0].Job.ID {
			t.Fatalf("job ids %d %d %d, want the duplicate to name the first", results[0].Job.ID, results[1].Job.ID, results[2].Job.ID)
		}
		if n := e.count(t, "SELECT count(*) FROM river_job"); n != 2 {
			t.Fatalf("river_job rows = %d, want 2", n)
		}
	})
}

// Stop waits for a running job; when its context ends first, Stop cancels the
// job's context and returns once the job has returned.
func TestStopGracefulThenHard(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		workers := river.NewWorkers()
		q, err := newQueue(e.dialect, e.pool, workers, append(e.opts, withTestOnly(), WithLogger(testLogger(t)))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		cancelled := make(chan error, 1)
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
			close(started)
			<-ctx.Done()
			cancelled <- context.Cause(ctx)
			return ctx.Err()
		}))
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			_, err := q.InsertTx(ctx, tx, notifyArgs{Item: 1}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		<-started
		stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := q.Stop(stopCtx); err != nil {
			t.Fatalf("Stop = %v, want nil after the hard stop", err)
		}
		select {
		case <-cancelled:
		default:
			t.Fatal("Stop returned but the running job's context was never cancelled")
		}
	})
}

func TestKeyKeepsACallersKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		q := e.migrated(t, nil)
		var got []string
		for _, md := range []string{`{"idempotency_key":"req-42"}`, `{"trace":"x"}`, ""} {
			if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				res, err := q.InsertTx(ctx, tx, notifyArgs{Item: len(got)}, &river.InsertOpts{Metadata: []byte(md)})
				if err == nil {
					got = append(got, Key(res.Job))
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if got[0] != "req-42" || len(got[1]) != 36 || len(got[2]) != 36 || got[1] == got[2] {
			t.Fatalf("keys = %q, want the caller's, then two distinct UUIDs", got)
		}
		if k := Key(&rivertype.JobRow{ID: 9, Kind: "k", Metadata: []byte(`{}`)}); k != "river:k:9" {
			t.Fatalf("fallback key = %q", k)
		}
	})
}

type followUpArgs struct {
	Item int `json:"item"`
}

func (followUpArgs) Kind() string { return "test_follow_up" }

// A worker that holds its Queue writes a row and enqueues a follow-up job in one
// transaction of the service's own, while River works on beside it (on SQLite: the
// service's single connection and River's own, on one file).
func TestWorkerEnqueuesAFollowUpInItsTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		workers := river.NewWorkers()
		q := e.migrated(t, workers)
		f := newEffects()
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
			return e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO items (id, name) VALUES ("+e.ph(1)+", 'scored')", job.Args.Item); err != nil {
					return err
				}
				_, err := q.InsertTx(ctx, tx, followUpArgs{Item: job.Args.Item}, nil)
				return err
			})
		}))
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[followUpArgs]) error {
			f.add(int64(job.Args.Item), Key(job.JobRow))
			return nil
		}))
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := range n {
			if err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := q.InsertTx(ctx, tx, notifyArgs{Item: i}, nil)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every follow-up to complete", func() bool {
			return e.count(t, "SELECT count(*) FROM river_job WHERE state = 'completed' AND kind = 'test_follow_up'") == n
		})
		if got := e.count(t, "SELECT count(*) FROM items"); got != n || f.total() != n {
			t.Fatalf("items %d, follow-ups worked %d; want %d and %d", got, f.total(), n, n)
		}
	})
}
