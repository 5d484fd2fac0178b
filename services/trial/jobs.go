package trial

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/visit"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

// WindowClosed is scheduled for the instant a planned visit's window closes.
// Its worker writes the visit's MISSED state when it is still pending then, so
// the visit's updated_at moves and a ListWorklist poller (updated_after) sees
// the change; until it runs, reads compute MISSED from the clock anyway.
type WindowClosed struct {
	VisitID string `json:"visit_id"`
}

// Kind implements river.JobArgs.
func (WindowClosed) Kind() string { return "trial.window_closed" }

type windowClosedWorker struct {
	river.WorkerDefaults[WindowClosed]
	s *Service
}

// Work marks the visit MISSED once its window has closed on the service's
// clock; earlier (a re-plan moved the window, or the clock is behind) it
// snoozes until the close.
func (w *windowClosedWorker) Work(ctx context.Context, job *river.Job[WindowClosed]) error {
	v, err := w.s.ent.Visit.Get(ctx, job.Args.VisitID)
	if ent.IsNotFound(err) || (err == nil && plan.Status(v.Status) != plan.Pending) {
		return nil
	}
	if err != nil {
		return err
	}
	now := w.s.now()
	if wait := v.ClosesAt.Sub(now); wait > 0 {
		return river.JobSnooze(wait)
	}
	return w.s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		c := entOn(tx)
		return c.Visit.Update().Where(visit.ID(v.ID), visit.Status(int32(plan.Pending)), visit.ClosesAtLTE(now)).
			SetStatus(int32(plan.Missed)).SetUpdatedAt(w.s.stamp()).Exec(ctx)
	})
}

// scheduleClose enqueues the WindowClosed job of a visit in the transaction
// that planned or re-planned it.
func (s *Service) scheduleClose(ctx context.Context, tx *db.Tx, id string, closesAt time.Time) error {
	if _, err := s.jobs.InsertTx(ctx, tx, WindowClosed{VisitID: id}, &river.InsertOpts{ScheduledAt: closesAt}); err != nil {
		return fmt.Errorf("schedule window close: %w", err)
	}
	return nil
}
