package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// purgeKeysEvery is how often each service deletes its expired idempotency keys.
const purgeKeysEvery = time.Hour

// purgeKeys is the periodic job that deletes expired idempotency keys, so the table
// holds about one key lifetime (24 h) of writes, not all of history.
type purgeKeys struct{}

// Kind implements river.JobArgs.
func (purgeKeys) Kind() string { return "platform.purge_idempotency_keys" }

// InsertOpts makes at most one purge wait at a time.
func (purgeKeys) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: purgeKeysEvery}}
}

type purgeKeysWorker struct {
	river.WorkerDefaults[purgeKeys]
	db    *db.DB
	store *idempotency.Store
}

func (w *purgeKeysWorker) Work(ctx context.Context, _ *river.Job[purgeKeys]) error {
	if _, err := w.store.Purge(ctx, w.db); err != nil {
		return fmt.Errorf("purge expired idempotency keys: %w", err)
	}
	return nil
}

// addKitJobs registers the jobs every service runs (expired idempotency keys
// purged, the audit trail verified): the workers on workers, the schedules on the
// queue's client.
func addKitJobs(m *Mount) error {
	metrics, err := newAuditMetrics(m.Metrics)
	if err != nil {
		return err
	}
	river.AddWorker(m.Workers, &purgeKeysWorker{db: m.DB, store: m.Idempotency})
	river.AddWorker(m.Workers, &verifyAuditWorker{db: m.DB, audit: m.Audit, metrics: metrics, log: m.Log})
	m.Jobs.Client().PeriodicJobs().Add(river.NewPeriodicJob(
		river.PeriodicInterval(purgeKeysEvery),
		func() (river.JobArgs, *river.InsertOpts) { return purgeKeys{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true},
	))
	m.Jobs.Client().PeriodicJobs().Add(river.NewPeriodicJob(
		river.PeriodicInterval(verifyAuditEvery),
		func() (river.JobArgs, *river.InsertOpts) { return verifyAudit{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true},
	))
	return nil
}
