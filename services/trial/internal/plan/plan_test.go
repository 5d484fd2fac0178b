package plan

import (
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func date(t *testing.T, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseDateRefusesDaysThatDoNotExist(t *testing.T) {
	for s, ok := range map[string]bool{
		"2025-02-28": true, "2025-02-29": false, "2024-02-29": true, "2025-02-31": false,
		"2025-04-31": false, "2025-12-31": true, "2025-13-01": false, "2025-1-01": false, "": false,
	} {
		if _, err := ParseDate(s); (err == nil) != ok {
			t.Errorf("ParseDate(%q) error %v, want ok=%v", s, err, ok)
		}
	}
}

func TestStudyDaysHaveNoDayZero(t *testing.T) {
	enrolled := date(t, "2025-03-01")
	for _, tc := range []struct {
		day  int
		date string
	}{
		{-14, "2025-02-15"}, {-1, "2025-02-28"}, {1, "2025-03-01"}, {2, "2025-03-02"}, {365, "2026-02-28"},
	} {
		got := enrolled.AddDays(Offset(tc.day))
		if got.String() != tc.date {
			t.Errorf("day %d: %s, want %s", tc.day, got, tc.date)
		}
		if back := StudyDay(enrolled, got); back != tc.day {
			t.Errorf("StudyDay(%s) = %d, want %d", got, back, tc.day)
		}
	}
}

// Windows at every edge a clinical user checks: the instants are local
// midnights of the site's zone, in UTC.
func TestWindowFor(t *testing.T) {
	for _, tc := range []struct {
		name, zone, enrolled string
		visit                Visit
		planned, open, close string
		opensAt, closesAt    string
	}{
		{"Shanghai UTC+8, day 1", "Asia/Shanghai", "2025-03-10", Visit{"BASELINE", 1, 0, 2},
			"2025-03-10", "2025-03-10", "2025-03-12", "2025-03-09T16:00:00Z", "2025-03-12T16:00:00Z"},
		{"New York winter UTC-5, day 1", "America/New_York", "2025-01-10", Visit{"BASELINE", 1, 0, 2},
			"2025-01-10", "2025-01-10", "2025-01-12", "2025-01-10T05:00:00Z", "2025-01-13T05:00:00Z"},
		{"New York across spring-forward (2025-03-09), 71 h", "America/New_York", "2025-03-08", Visit{"BASELINE", 1, 0, 2},
			"2025-03-08", "2025-03-08", "2025-03-10", "2025-03-08T05:00:00Z", "2025-03-11T04:00:00Z"},
		{"New York across fall-back (2025-11-02), 73 h", "America/New_York", "2025-11-01", Visit{"BASELINE", 1, 0, 2},
			"2025-11-01", "2025-11-01", "2025-11-03", "2025-11-01T04:00:00Z", "2025-11-04T05:00:00Z"},
		{"window across a month end (February)", "Asia/Shanghai", "2025-02-01", Visit{"W04", 29, 3, 3},
			"2025-03-01", "2025-02-26", "2025-03-04", "2025-02-25T16:00:00Z", "2025-03-04T16:00:00Z"},
		{"window across a year end", "America/New_York", "2025-12-01", Visit{"W04", 29, 3, 3},
			"2025-12-29", "2025-12-26", "2026-01-01", "2025-12-26T05:00:00Z", "2026-01-02T05:00:00Z"},
		{"study day -14 (screening)", "Asia/Shanghai", "2025-03-01", Visit{"SCREEN", -14, 0, 3},
			"2025-02-15", "2025-02-15", "2025-02-18", "2025-02-14T16:00:00Z", "2025-02-18T16:00:00Z"},
		{"study day 365", "America/New_York", "2025-03-01", Visit{"Y1", 365, 7, 7},
			"2026-02-28", "2026-02-21", "2026-03-07", "2026-02-21T05:00:00Z", "2026-03-08T05:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := WindowFor(date(t, tc.enrolled), tc.visit, zone(t, tc.zone))
			if w.Planned.String() != tc.planned || w.Open.String() != tc.open || w.Close.String() != tc.close {
				t.Errorf("dates %s [%s, %s], want %s [%s, %s]", w.Planned, w.Open, w.Close, tc.planned, tc.open, tc.close)
			}
			if !w.OpensAt.Equal(utc(t, tc.opensAt)) || !w.ClosesAt.Equal(utc(t, tc.closesAt)) {
				t.Errorf("instants [%s, %s), want [%s, %s)", w.OpensAt, w.ClosesAt, tc.opensAt, tc.closesAt)
			}
		})
	}
}

// Status at the first and last minute of a window, and the minutes around it,
// in both zones.
func TestStatusAtWindowEdges(t *testing.T) {
	for _, tc := range []struct {
		zone  string
		first string // first minute of the window, UTC
		last  string // last minute of the window, UTC
	}{
		{"Asia/Shanghai", "2025-03-09T16:00:00Z", "2025-03-12T15:59:00Z"},
		{"America/New_York", "2025-03-08T05:00:00Z", "2025-03-11T03:59:00Z"}, // across spring-forward
	} {
		t.Run(tc.zone, func(t *testing.T) {
			enrolled := "2025-03-10"
			if tc.zone == "America/New_York" {
				enrolled = "2025-03-08"
			}
			w := WindowFor(date(t, enrolled), Visit{"BASELINE", 1, 0, 2}, zone(t, tc.zone))
			first, last := utc(t, tc.first), utc(t, tc.last)
			for _, c := range []struct {
				at     time.Time
				in     bool
				status Status
			}{
				{first.Add(-time.Minute), false, Pending}, // not open yet: still pending
				{first, true, Pending},
				{last, true, Pending},
				{last.Add(time.Minute), false, Missed}, // closed
			} {
				if got := w.Contains(c.at); got != c.in {
					t.Errorf("Contains(%s) = %v, want %v", c.at, got, c.in)
				}
				if got := StatusAt(Pending, w, c.at); got != c.status {
					t.Errorf("StatusAt(%s) = %v, want %v", c.at, got, c.status)
				}
				if got := StatusAt(Completed, w, c.at); got != Completed {
					t.Errorf("a completed visit at %s is %v", c.at, got)
				}
			}
		})
	}
}

func TestLoadZoneRefusesUnknownAndLocal(t *testing.T) {
	for _, name := range []string{"", "Local", "Mars/Olympus_Mons"} {
		if _, err := LoadZone(name); err == nil {
			t.Errorf("LoadZone(%q) accepted", name)
		}
	}
}

func TestReplan(t *testing.T) {
	loc := zone(t, "America/New_York")
	enrolled := date(t, "2025-01-01")
	now := utc(t, "2025-01-20T12:00:00Z") // day 20
	plan := []Planned{
		{"v-base", "BASELINE", Completed},
		{"v-w1", "W01", Missed},
		{"v-w4", "W04", Pending},
		{"v-w8", "W08", Pending},
		{"v-old", "W02", Cancelled},
	}
	next := []Visit{
		{"BASELINE", 1, 0, 3},
		{"W01", 8, 1, 1},
		{"W02", 22, 2, 2}, // held only as cancelled, open later: added
		{"W04", 30, 2, 2}, // pending: takes the new definition
		{"W03", 10, 1, 1}, // new but its window has closed: not added
	}
	c := Replan(enrolled, loc, now, plan, next)
	if len(c.Update) != 1 || c.Update["v-w4"].StudyDay != 30 {
		t.Errorf("updates %v, want v-w4 on day 30", c.Update)
	}
	if len(c.Cancel) != 1 || c.Cancel[0] != "v-w8" {
		t.Errorf("cancelled %v, want [v-w8] (its code is gone)", c.Cancel)
	}
	if len(c.Add) != 1 || c.Add[0].Code != "W02" {
		t.Errorf("added %v, want W02 only", c.Add)
	}
	// A pending visit whose new window has already closed is cancelled, not missed.
	c = Replan(enrolled, loc, now, []Planned{{"v-w4", "W04", Pending}}, []Visit{{"W04", 5, 0, 0}})
	if len(c.Cancel) != 1 || len(c.Update) != 0 {
		t.Errorf("closed new window: %+v, want the visit cancelled", c)
	}
}

func BenchmarkWindowFor(b *testing.B) {
	loc, err := LoadZone("America/New_York")
	if err != nil {
		b.Fatal(err)
	}
	enrolled := Date{2025, time.March, 8}
	v := Visit{"W04", 29, 3, 3}
	for b.Loop() {
		WindowFor(enrolled, v, loc)
	}
}
