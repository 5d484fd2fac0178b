package window

import (
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/deid"
)

func TestDateOfIsStudyDayInverse(t *testing.T) {
	anchor := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for day := -400; day <= 400; day++ {
		if day == 0 {
			continue
		}
		if got := deid.StudyDay(anchor, DateOf(anchor, day)); got != day {
			t.Fatalf("StudyDay(DateOf(%d)) = %d", day, got)
		}
	}
	if got := DateOf(anchor, 1); !got.Equal(anchor) {
		t.Fatalf("day 1 = %v, want the anchor", got)
	}
	if got := DateOf(anchor, -1).Format(time.DateOnly); got != "2026-03-09" {
		t.Fatalf("day -1 = %s", got)
	}
}

func TestPlanWindow(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	enrolled := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC) // 16:00 in Berlin
	tests := []struct {
		name          string
		plan          Plan
		opens, closes string
	}{
		{"day 1 only", Plan{TargetDay: 1, Anchor: enrolled, Location: berlin}, "2026-03-10T00:00:00+01:00", "2026-03-11T00:00:00+01:00"},
		{"day 20 +-2 across the DST change (29 March)", Plan{TargetDay: 20, Before: 2, After: 2, Anchor: enrolled, Location: berlin}, "2026-03-27T00:00:00+01:00", "2026-04-01T00:00:00+02:00"},
		{"window after DST", Plan{TargetDay: 22, Before: 0, After: 0, Anchor: enrolled, Location: berlin}, "2026-03-31T00:00:00+02:00", "2026-04-01T00:00:00+02:00"},
		{"screening day -7", Plan{TargetDay: -7, After: 6, Anchor: enrolled, Location: berlin}, "2026-03-03T00:00:00+01:00", "2026-03-10T00:00:00+01:00"},
		{"UTC by default", Plan{TargetDay: 2, Anchor: enrolled}, "2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := tt.plan.Window()
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Opens.Format(time.RFC3339); got != tt.opens {
				t.Errorf("opens %s, want %s", got, tt.opens)
			}
			if got := w.Closes.Format(time.RFC3339); got != tt.closes {
				t.Errorf("closes %s, want %s", got, tt.closes)
			}
		})
	}
	for _, bad := range []Plan{{TargetDay: 0, Anchor: enrolled}, {TargetDay: 3, Before: -1, Anchor: enrolled}, {TargetDay: 3, After: -1, Anchor: enrolled}} {
		if _, err := bad.Window(); err == nil {
			t.Errorf("plan %+v accepted", bad)
		}
	}
}

func TestDecide(t *testing.T) {
	opens := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	closes := time.Date(2026, 3, 23, 0, 0, 0, 0, time.UTC)
	w := Window{Opens: opens, Closes: closes}
	grace := 24 * time.Hour
	ns := time.Nanosecond
	tests := []struct {
		name               string
		authored, received time.Time
		want               Verdict
	}{
		{"first instant", opens, opens, OnTime},
		{"just before opening", opens.Add(-ns), opens, NotYetOpen},
		{"last instant", closes.Add(-ns), closes.Add(-ns), OnTime},
		{"authored at closing", closes, closes, Closed},
		{"offline: received at closing", closes.Add(-time.Hour), closes, Late},
		{"offline: last instant of grace", closes.Add(-time.Hour), closes.Add(grace - ns), Late},
		{"offline: grace over", closes.Add(-time.Hour), closes.Add(grace), Closed},
		{"clock skew allowed", opens.Add(time.Hour + ClockSkew), opens.Add(time.Hour), OnTime},
		{"authored in the future", opens.Add(time.Hour + ClockSkew + ns), opens.Add(time.Hour), AuthoredInFuture},
		{"back-filled long after", opens, closes.Add(30 * 24 * time.Hour), Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Decide(tt.authored, tt.received, grace); got != tt.want {
				t.Fatalf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
	if got := w.Decide(closes.Add(-time.Hour), closes, 0); got != Closed {
		t.Errorf("without grace a late delivery is %v, want closed", got)
	}
	for v, accepted := range map[Verdict]bool{OnTime: true, Late: true, NotYetOpen: false, Closed: false, AuthoredInFuture: false} {
		if v.Accepted() != accepted {
			t.Errorf("%v accepted = %v", v, v.Accepted())
		}
	}
}

func TestAtAndTally(t *testing.T) {
	w := Window{Opens: time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC), Closes: time.Date(2026, 3, 23, 0, 0, 0, 0, time.UTC)}
	grace := 24 * time.Hour
	tests := []struct {
		name     string
		now      time.Time
		answered bool
		want     State
	}{
		{"before", w.Opens.Add(-time.Nanosecond), false, NotDue},
		{"opened", w.Opens, false, Pending},
		{"in grace", w.Closes.Add(grace - time.Nanosecond), false, Pending},
		{"missed", w.Closes.Add(grace), false, Missed},
		{"answered", w.Closes.Add(grace), true, Completed},
	}
	var tally Tally
	for _, tt := range tests {
		got := w.At(tt.now, tt.answered, grace)
		if got != tt.want {
			t.Errorf("%s: state %v, want %v", tt.name, got, tt.want)
		}
		tally.Add(got)
	}
	if want := (Tally{Expected: 4, Completed: 1, Missed: 1, Pending: 2}); tally != want {
		t.Fatalf("tally = %+v, want %+v", tally, want)
	}
}
