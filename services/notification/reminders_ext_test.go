package notification_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/notification"
)

// nextDSTChange is the first day after from on which loc's UTC offset differs
// from the day before's.
func nextDSTChange(t *testing.T, loc *time.Location, from time.Time) time.Time {
	t.Helper()
	d := time.Date(from.Year(), from.Month(), from.Day(), 12, 0, 0, 0, loc)
	_, prev := d.Zone()
	for range 400 {
		d = d.AddDate(0, 0, 1)
		if _, off := d.Zone(); off != prev {
			return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		}
	}
	t.Fatal("no DST change within 400 days")
	return time.Time{}
}

func TestPlanVisitAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	change := nextDSTChange(t, ny, time.Now())
	open := change.AddDate(0, 0, 1) // the window opens the day after the change
	closes := open.AddDate(0, 0, 3)
	got := notification.PlanVisit("sv-1", open.Format("2006-01-02"), open.UTC(), closes.UTC(), ny, 9, 24*time.Hour)
	if len(got) != 2 {
		t.Fatalf("reminders = %v", got)
	}
	want := time.Date(open.Year(), open.Month(), open.Day(), 9, 0, 0, 0, ny)
	if !got[0].At.Equal(want) || got[0].At.In(ny).Hour() != 9 {
		t.Errorf("opening reminder at %v (%v local), want 09:00 local", got[0].At, got[0].At.In(ny))
	}
	// A fixed UTC offset taken before the change would be an hour off.
	_, before := change.AddDate(0, 0, -1).Add(12 * time.Hour).Zone()
	naive := time.Date(open.Year(), open.Month(), open.Day(), 9, 0, 0, 0, time.FixedZone("before", before))
	if got[0].At.Equal(naive) {
		t.Errorf("opening reminder ignores the DST change")
	}
	if !got[1].At.Equal(closes.Add(-24*time.Hour)) || got[1].Params[0].Value != 24 {
		t.Errorf("closing reminder = %+v", got[1])
	}
}

func TestRemindersFromTheWorklistAreScheduledAndCancelled(t *testing.T) {
	f := setup(t, notification.WithPollEvery(200*time.Millisecond))
	ctx := context.Background()
	ny, _ := time.LoadLocation("America/New_York")
	change := nextDSTChange(t, ny, time.Now())
	open := change.AddDate(0, 0, 1)
	closes := open.AddDate(0, 0, 3)
	subject, visit, withdrawn := uuid.NewString(), uuid.NewString(), uuid.NewString()
	mk := func(id, subj string, status trialv1.SubjectVisitStatus) *trialv1.SubjectVisit {
		return &trialv1.SubjectVisit{SubjectVisitId: id, SubjectUuid: subj, SiteId: f.site, WindowOpenDate: open.Format("2006-01-02"),
			WindowOpensAt: timestamppb.New(open), WindowClosesAt: timestamppb.New(closes), Status: status}
	}
	f.trial.putVisit(mk(visit, subject, trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING))
	f.trial.putVisit(mk(withdrawn, uuid.NewString(), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING))
	list := func(subj string) []*notificationv1.Notification {
		res, err := f.admin.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{SubjectUuid: subj})
		if err != nil {
			t.Fatal(err)
		}
		return res.GetNotifications()
	}
	eventually(t, "two reminders planned", func() bool { return len(list(subject)) == 2 })
	wantOpen := time.Date(open.Year(), open.Month(), open.Day(), 9, 0, 0, 0, ny)
	for _, n := range list(subject) {
		if n.GetStatus() != stQueued || n.GetExpiresAt().AsTime() != closes.UTC() || n.GetSubjectVisitId() != visit {
			t.Errorf("reminder = %v", n)
		}
		switch n.GetTemplateCode() {
		case "visit_window_opened":
			if !n.GetScheduledFor().AsTime().Equal(wantOpen) {
				t.Errorf("opening reminder at %v, want %v", n.GetScheduledFor().AsTime(), wantOpen)
			}
		case "visit_window_closing":
			if !n.GetScheduledFor().AsTime().Equal(closes.Add(-24 * time.Hour)) {
				t.Errorf("closing reminder at %v", n.GetScheduledFor().AsTime())
			}
		}
		// Its River job waits for the same instant.
		var at time.Time
		if err := f.env.DB(t).SQL().QueryRow(`SELECT scheduled_at FROM river_job WHERE kind = 'notification.deliver' AND args->>'notification_id' = $1`,
			n.GetNotificationId()).Scan(&at); err != nil {
			t.Fatal(err)
		}
		if !at.Equal(n.GetScheduledFor().AsTime()) {
			t.Errorf("job scheduled at %v, notification at %v", at, n.GetScheduledFor().AsTime())
		}
	}
	// The patient submits; the other subject is withdrawn (its visits cancelled).
	f.trial.putVisit(mk(visit, subject, trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED))
	other := f.trial.visits[withdrawn].GetSubjectUuid()
	f.trial.putVisit(mk(withdrawn, other, trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_CANCELLED))
	eventually(t, "reminders cancelled", func() bool {
		for _, n := range append(list(subject), list(other)...) {
			if n.GetStatus() != stCancelled {
				return false
			}
		}
		return true
	})
	for _, n := range list(subject) {
		if n.GetCancelReason() != "visit completed: questionnaire submitted" {
			t.Errorf("cancel reason %q", n.GetCancelReason())
		}
	}
	for _, n := range list(other) {
		if n.GetCancelReason() != "visit cancelled: subject withdrawn or visit re-planned" {
			t.Errorf("cancel reason %q", n.GetCancelReason())
		}
	}
}
