package notification

// Reconciliation: a delivery job River discarded without its worker recording
// the end (the rescuer gave up on a job whose last attempt's process died) would
// leave its notification waiting forever. A periodic job marks such
// notifications DEAD, so they show up as dead letters and can be re-queued.

import (
	"context"
	"errors"
	"fmt"

	"entgo.io/ent/dialect"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/notification/ent/notification"
)

// Reconcile is the periodic job that marks notifications DEAD whose delivery
// job River discarded.
type Reconcile struct{}

// Kind implements river.JobArgs.
func (Reconcile) Kind() string { return "notification.reconcile" }

type reconcileWorker struct {
	river.WorkerDefaults[Reconcile]
	s *Service
}

func (w *reconcileWorker) Work(ctx context.Context, _ *river.Job[Reconcile]) error {
	_, err := w.s.reconcile(ctx)
	return err
}

// reconcile returns how many notifications it marked DEAD.
func (s *Service) reconcile(ctx context.Context) (int, error) {
	arg := "j.args->>'notification_id'"
	if s.db.Dialect() == dialect.SQLite {
		arg = "json_extract(j.args, '$.notification_id')"
	}
	q := `SELECT n.id FROM notifications n WHERE n.status IN ('QUEUED', 'RETRYING', 'SENDING')
AND EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'notification.deliver' AND ` + arg + ` = n.id AND j.state = 'discarded')
AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'notification.deliver' AND ` + arg + ` = n.id
  AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))`
	rows, err := s.db.SQL().QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := errorsJoin(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	marked := 0
	for _, id := range ids {
		k, err := s.ent.Notification.Update().Where(notification.ID(id), notification.StatusIn(stQueued, stRetrying, stSending)).
			SetStatus(stDead).SetLastError("delivery job discarded: its last attempt's worker was lost").
			ClearNextAttemptAt().SetUpdatedAt(s.now()).Save(ctx)
		if err != nil {
			return marked, err
		}
		if k == 1 {
			marked++
			s.log.Warn("notification dead", "notification_id", id, "cause", "delivery job discarded by River")
		}
	}
	return marked, nil
}

func errorsJoin(errs ...error) error { return errors.Join(errs...) }
