// Package jobs is the kit's transactional outbox and job queue: River
// (github.com/riverqueue/river) on the service's own database.
//
// A job is inserted with InsertTx in the same transaction as the data that caused
// it, so it exists if and only if that data committed. River works it with
// retries and backoff, runs scheduled jobs at their time, dedupes unique jobs,
// keeps jobs that ran out of attempts as discarded (dead letters, see Discarded
// and Retry), rescues jobs whose process died, and lets many processes work one
// queue, each job once at a time. Every job gets an idempotency key at insert
// (Key) that a worker sends to the service it calls, so a job that runs twice
// (rescued, or retried after a lost answer) does its effect once.
//
//	workers := river.NewWorkers()
//	q, err := jobs.New(d, workers)             // before the workers: they may hold q
//	river.AddWorker(workers, &notifyWorker{q: q, patients: patients})
//	err = q.Migrate(ctx)                        // at start, beside the service's migrations
//	err = q.Start(ctx)                          // works jobs until Stop
//	defer q.Stop(shutdownCtx)
//
//	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
//		// ... ent writes on tx.Driver() ...
//		_, err := q.InsertTx(ctx, tx, NotifyArgs{Subject: s}, nil)
//		return err
//	})
//
// Drivers: PostgreSQL through riverdatabasesql on the db.DB's own pool (the one
// its transactions come from), polling for new jobs unless WithListener gives a
// DSN for a pgx LISTEN connection; SQLite through riversqlite on a connection of
// River's own to the same file, opened by New (River's background work must not
// queue behind the service's single writer connection).
//
// Figures (River v0.51.2, PostgreSQL 15 from pgtest without fsync, modernc
// SQLite, 2 cores shared with other work at load 5 to 8, so only ratios mean
// anything; go test -run '^$' -bench . ./jobs/, five runs of BenchmarkInsertTx,
// median and range). Committed transactions per second, 8 concurrent writers:
//
//	                    plain row            row + InsertTx
//	PostgreSQL lib/pq   4,000 (2,000-4,500)    770 (660-1,010)
//	PostgreSQL pgx      4,500 (3,800-6,500)  1,050 (560-1,810)
//	SQLite              7,300 (7,300-9,900)    400 (400-670)
//
// A job costs a PostgreSQL write about four fifths of its throughput whatever the
// driver (River's insert is one large statement, plus a NOTIFY); pgx's
// database/sql driver (github.com/jackc/pgx/v5/stdlib) commits row + job about
// 1.35 times as fast as lib/pq (pgx prepares and caches the statement per
// connection; lib/pq sends it unnamed, so PostgreSQL plans it on every call). InsertTx runs on the service's own transaction, so which driver a write
// uses is the db.DB's setting, not the Queue's; this package works and is tested
// over both. Recommended default for db: pgx's database/sql driver, lib/pq kept.
//
// Commit to worker start, one job at a time arriving at random (p50 / p90 ms):
//
//	PostgreSQL, polling, kit defaults (5 ms cooldown, 50 ms poll)    26-29 / 50-68
//	PostgreSQL, polling, River defaults (100 ms, 1 s)                  ~1,000
//	PostgreSQL, WithListener (pgx LISTEN), lib/pq or pgx pool            1-2 / 4-7
//	SQLite, kit defaults (River's notification table, 50 ms)          19-21 / 35-40
//
// Hence the defaults: poll every 50 ms (a job starts within about 50 ms, at the
// price of 20 small queries a second per queue and process when idle), and the
// recommendation that a deployed service pass its DSN to WithListener, which
// starts jobs in about 2 ms and relaxes polling to 1 s.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"entgo.io/ent/dialect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Queue is a service's River client on its database: it inserts jobs in the
// service's transactions and, unless it is insert-only, works them.
type Queue struct {
	client       *river.Client[*sql.Tx]
	works        bool
	logger       *slog.Logger
	hardStopWait time.Duration
	closers      []func()
}

// New builds the Queue for d, choosing River's driver from d.Dialect(). It does
// not start working: call Migrate, then Start. Workers may be added to workers
// after New and before Start, so a worker can hold the Queue it runs on. With
// workers nil the Queue is insert-only: it inserts and lists jobs but never works
// them (another process does), and Start does nothing.
func New(d *db.DB, workers *river.Workers, opts ...Option) (*Queue, error) {
	return newQueue(d.Dialect(), d.SQL(), workers, opts...)
}

// newQueue is New on a bare pool, so tests can run River over a pool that
// db.Open does not make (pgx's database/sql driver).
func newQueue(dia string, pool *sql.DB, workers *river.Workers, opts ...Option) (*Queue, error) {
	cfg := newConfig(opts)
	q := &Queue{works: workers != nil, logger: cfg.logger, hardStopWait: cfg.hardStopWait}
	var driver riverdriver.Driver[*sql.Tx]
	switch dia {
	case dialect.Postgres:
		if cfg.listenDSN == "" {
			driver = riverdatabasesql.New(pool)
			break
		}
		pcfg, err := pgxpool.ParseConfig(cfg.listenDSN)
		if err != nil {
			return nil, fmt.Errorf("jobs: listener DSN: %w", err)
		}
		// River hijacks one connection per client for LISTEN and never returns it.
		pcfg.MinConns, pcfg.MaxConns = 0, 1
		lp, err := pgxpool.NewWithConfig(context.Background(), pcfg)
		if err != nil {
			return nil, fmt.Errorf("jobs: listener pool: %w", err)
		}
		q.closers = append(q.closers, lp.Close)
		driver = riverdatabasesql.NewWithPgxListener(pool, lp)
	case dialect.SQLite:
		own, err := openSQLite(pool)
		if err != nil {
			return nil, err
		}
		q.closers = append(q.closers, func() { _ = own.Close() })
		driver = riversqlite.New(own)
	default:
		return nil, fmt.Errorf("jobs: unsupported dialect %q", dia)
	}

	for _, p := range cfg.plugins {
		_, hook := p.(rivertype.Hook)
		_, mw := p.(rivertype.Middleware)
		if !hook && !mw {
			// River would skip it without a word (say, a value whose IsHook has a
			// pointer receiver).
			q.close()
			return nil, fmt.Errorf("jobs: plugin %T is neither a River hook nor middleware", p)
		}
	}

	rc := &river.Config{
		FetchCooldown:        cfg.cooldown,
		FetchPollInterval:    cfg.poll,
		ID:                   cfg.id,
		JobTimeout:           cfg.jobTimeout,
		Logger:               cfg.logger,
		MaxAttempts:          cfg.maxAttempts,
		Plugins:              append([]rivertype.Plugin{&keyHook{}}, cfg.plugins...),
		RescueStuckJobsAfter: cfg.rescueAfter,
		RetryPolicy:          cfg.retryPolicy,
		Test:                 river.TestConfig{Time: cfg.clock},
		TestOnly:             cfg.testOnly,
		Workers:              workers,
	}
	if q.works {
		rc.Queues = make(map[string]river.QueueConfig, len(cfg.queues))
		for name, n := range cfg.queues {
			rc.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
		if len(rc.Queues) == 0 {
			q.close()
			return nil, errors.New("jobs: a Queue with workers needs at least one queue (WithQueues)")
		}
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		q.close()
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	q.client = client
	return q, nil
}

// Client is the River client, for what the Queue does not wrap (Insert outside a
// transaction, JobCancel, QueuePause, Subscribe...).
func (q *Queue) Client() *river.Client[*sql.Tx] { return q.client }

// Migrate brings River's tables (river_job, river_leader, river_queue...) to the
// newest version of River's migrations, each in its own transaction; applied
// versions are skipped. Call it at start next to the service's own migrations.
func (q *Queue) Migrate(ctx context.Context) error {
	m, err := rivermigrate.New(q.client.Driver(), &rivermigrate.Config{Logger: q.logger})
	if err != nil {
		return fmt.Errorf("jobs: migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate river tables: %w", err)
	}
	return nil
}

// InsertTx enqueues a job in tx: it becomes visible to workers when tx commits
// and vanishes if tx rolls back. opts may be nil (the args' InsertOpts and the
// Queue's defaults apply). A unique job that already exists is not inserted
// again: the result has UniqueSkippedAsDuplicate and the existing job.
func (q *Queue) InsertTx(ctx context.Context, tx *db.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := q.client.InsertTx(ctx, tx.Tx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	return res, nil
}

// Start begins working jobs on the configured queues in the background, and the
// maintenance River runs on one elected process (scheduling, rescue, cleanup). It
// returns once started. Cancelling ctx stops the Queue hard (running jobs'
// contexts are cancelled), so pass the process's lifetime context and stop with
// Stop. On an insert-only Queue it does nothing.
func (q *Queue) Start(ctx context.Context) error {
	if !q.works {
		return nil
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop stops fetching and waits for running jobs to finish until ctx is done;
// then it cancels their contexts and waits up to the hard-stop wait (default 10 s)
// for them to return. A job cut off by the hard stop is retried later, with the
// same key. Once River has stopped, Stop closes the connections the Queue opened
// itself; if jobs still run after the hard-stop wait it returns an error and
// leaves them open. Call it once, also on an insert-only Queue.
func (q *Queue) Stop(ctx context.Context) error {
	if !q.works {
		q.close()
		return nil
	}
	err := q.client.Stop(ctx)
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.hardStopWait)
		defer cancel()
		if err := q.client.StopAndCancel(hardCtx); err != nil {
			return fmt.Errorf("jobs: hard stop: jobs still running after %s: %w", q.hardStopWait, err)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	q.close()
	return nil
}

func (q *Queue) close() {
	for _, c := range q.closers {
		c()
	}
	q.closers = nil
}
