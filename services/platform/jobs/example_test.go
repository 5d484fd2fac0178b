package jobs_test

import (
	"context"
	"log"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

// SendReminderArgs is a job that calls the notification service.
type SendReminderArgs struct {
	Subject string `json:"subject"`
	Visit   string `json:"visit"`
}

// Kind names the job in river_job.kind.
func (SendReminderArgs) Kind() string { return "send_reminder" }

// sendReminder works SendReminderArgs; it holds the Queue to enqueue follow-ups.
type sendReminder struct {
	river.WorkerDefaults[SendReminderArgs]
	q *jobs.Queue
}

func (w *sendReminder) Work(ctx context.Context, job *river.Job[SendReminderArgs]) error {
	key := jobs.Key(job.JobRow) // the same on every attempt: send it as idempotency_key
	_ = key
	return nil // an error retries with backoff; after the last attempt the job is a dead letter
}

// The wiring a service's start-up does once: the Queue first, then the workers
// that hold it, River's migrations, then Start; and a write that enqueues its
// job in its own transaction.
func Example() {
	ctx := context.Background()
	d, err := db.Open(ctx, "postgres://trial@db:5432/trial?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	workers := river.NewWorkers()
	q, err := jobs.New(d, workers, jobs.WithListener("postgres://trial@db:5432/trial?sslmode=disable"))
	if err != nil {
		log.Fatal(err)
	}
	river.AddWorker(workers, &sendReminder{q: q})
	if err := q.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer q.Stop(ctx)

	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		// ... the visit row, through ent on tx.Driver() ...
		_, err := q.InsertTx(ctx, tx, SendReminderArgs{Subject: "0b6e...", Visit: "v2"}, nil)
		return err // an error rolls back the row and the job together
	})
	if err != nil {
		log.Fatal(err)
	}
}

// An admin's view of dead letters, and re-queueing one.
func ExampleQueue_Discarded() {
	var q *jobs.Queue // from jobs.New
	ctx := context.Background()
	page, err := q.Discarded(ctx, 50, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, job := range page.Jobs {
		log.Printf("job %d %s: %d attempts, last error %q", job.ID, job.Kind, job.Attempt, job.Errors[len(job.Errors)-1].Error)
	}
	if len(page.Jobs) > 0 {
		if _, err := q.Retry(ctx, page.Jobs[0].ID); err != nil {
			log.Fatal(err)
		}
	}
}
