package notification

// Reminders, planned from the trial service's worklist (ListWorklist with an
// updated_after cursor per trial, as the ePRO service copies it): for every
// PENDING visit of an enrolled subject, one reminder when its window opens (at
// Config.ReminderHour local time on window_open_date, in the site's time zone,
// so right across daylight-saving changes) and one ClosingLead before it closes.
// Each is a notification QUEUED with not_before and its delivery job scheduled
// then (River ScheduledAt), expiring when the window closes. A visit completed,
// cancelled (the subject withdrawn) or missed cancels its pending reminders with
// the reason; a re-planned window cancels the old ones and plans new ones.

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/notification"
	"github.com/trialhub/trialhub/services/notification/internal/templates"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/worklist"
)

// PlanReminders is the periodic job that plans reminders from the worklist.
type PlanReminders struct{}

// Kind implements river.JobArgs.
func (PlanReminders) Kind() string { return "notification.plan_reminders" }

type planRemindersWorker struct {
	river.WorkerDefaults[PlanReminders]
	s *Service
}

func (w *planRemindersWorker) Work(ctx context.Context, _ *river.Job[PlanReminders]) error {
	return w.s.planReminders(ctx)
}

func (s *Service) planReminders(ctx context.Context) error {
	return worklist.Trials(ctx, s.trials, func(ctx context.Context, t *trialv1.Trial) error {
		return s.planTrial(ctx, t.GetTrialId())
	})
}

// planTrial plans the reminders of a trial's visits changed since its cursor,
// each in its site's time zone (an unknown zone counts as UTC).
func (s *Service) planTrial(ctx context.Context, trialID string) error {
	var cursor time.Time
	if c, err := s.ent.Cursor.Get(ctx, trialID); err == nil {
		cursor = c.UpdatedAfter
	} else if !ent.IsNotFound(err) {
		return err
	}
	zones := map[string]*time.Location{}
	zone := func(name string) *time.Location {
		loc, ok := zones[name]
		if !ok {
			var err error
			if loc, err = time.LoadLocation(name); err != nil || name == "" {
				loc = time.UTC
			}
			zones[name] = loc
		}
		return loc
	}
	return worklist.Visits(ctx, s.trials, trialID, cursor, func(ctx context.Context, visits []*trialv1.SubjectVisit) error {
		return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			var newest time.Time
			for _, v := range visits {
				if err := s.planVisit(ctx, tx, c, v, zone(v.GetSiteTimeZone())); err != nil {
					return fmt.Errorf("visit %s: %w", v.GetSubjectVisitId(), err)
				}
				if u := worklist.UpdatedAt(v); u.After(newest) {
					newest = u
				}
			}
			if newest.IsZero() {
				return nil
			}
			cur, err := c.Cursor.Get(ctx, trialID)
			switch {
			case ent.IsNotFound(err):
				return c.Cursor.Create().SetID(trialID).SetUpdatedAfter(newest).Exec(ctx)
			case err != nil:
				return err
			case newest.After(cur.UpdatedAfter):
				return cur.Update().SetUpdatedAfter(newest).Exec(ctx)
			}
			return nil
		})
	})
}

// Reminder is one reminder a visit's window calls for.
type Reminder struct {
	Key      string
	Template string
	At       time.Time
	Params   []templates.Value
	Priority string
}

// PlanVisit returns the reminders of a visit window: when it opens, at hour
// local time (loc) on its first day, and lead before it closes. A reminder the
// window leaves no room for (the closing one before the opening one) is left out.
func PlanVisit(subjectVisitID, openDate string, opensAt, closesAt time.Time, loc *time.Location, hour int, lead time.Duration) []Reminder {
	var out []Reminder
	openAt := opensAt
	if d, err := time.ParseInLocation("2006-01-02", openDate, loc); err == nil {
		openAt = time.Date(d.Year(), d.Month(), d.Day(), hour, 0, 0, 0, loc).UTC()
	}
	if openAt.Before(opensAt) {
		openAt = opensAt
	}
	if openAt.Before(closesAt) {
		out = append(out, Reminder{Key: "reminder:" + subjectVisitID + ":window-open:" + strconv.FormatInt(opensAt.Unix(), 10),
			Template: "visit_window_opened", At: openAt, Priority: "NORMAL"})
	}
	closeAt := closesAt.Add(-lead)
	if closeAt.After(openAt) {
		out = append(out, Reminder{Key: "reminder:" + subjectVisitID + ":window-closing:" + strconv.FormatInt(closesAt.Unix(), 10),
			Template: "visit_window_closing", At: closeAt, Priority: "HIGH",
			Params: []templates.Value{{Name: "closes_in", Kind: templates.Hours, Value: int32(math.Round(lead.Hours()))}}})
	}
	return out
}

// planVisit brings one visit's reminders in line with its worklist entry.
func (s *Service) planVisit(ctx context.Context, tx *db.Tx, c *ent.Client, v *trialv1.SubjectVisit, loc *time.Location) error {
	pending, err := c.Notification.Query().Where(notification.SubjectVisitID(v.GetSubjectVisitId()),
		notification.RequestedBy(Name), notification.StatusIn(stQueued, stRetrying)).All(ctx)
	if err != nil {
		return err
	}
	cancelAll := func(reason string) error {
		for _, n := range pending {
			if err := s.cancelTx(ctx, tx, c, n, reason, serviceActor); err != nil {
				return err
			}
		}
		return nil
	}
	switch v.GetStatus() {
	case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED:
		return cancelAll("visit completed: questionnaire submitted")
	case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED:
		return cancelAll("visit cancelled: subject withdrawn or visit re-planned")
	case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED:
		return cancelAll("visit missed: window closed")
	case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING:
	default:
		return nil
	}
	closes := v.GetWindowClosesAt().AsTime()
	want := PlanVisit(v.GetSubjectVisitId(), v.GetWindowOpenDate(), v.GetWindowOpensAt().AsTime(), closes, loc, s.cfg.ReminderHour, s.cfg.ClosingLead)
	keys := map[string]bool{}
	now := s.now()
	for _, r := range want {
		keys[r.Key] = true
		if !closes.After(now) {
			continue
		}
		at := r.At
		if _, _, err := s.createOnce(ctx, tx, c, sendSpec{key: r.Key, kind: "REMINDER", priority: r.Priority,
			template: r.Template, values: r.Params, subject: v.GetSubjectUuid(), about: v.GetSubjectUuid(),
			trial: v.GetTrialId(), visit: v.GetSubjectVisitId(), notBefore: &at, expiresAt: &closes}); err != nil {
			return err
		}
	}
	for _, n := range pending {
		if !keys[n.IdempotencyKey] {
			if err := s.cancelTx(ctx, tx, c, n, "visit re-planned: window moved", serviceActor); err != nil {
				return err
			}
		}
	}
	return nil
}
