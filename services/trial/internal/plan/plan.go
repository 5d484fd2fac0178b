// Package plan is the trial service's domain: calendar dates, study days and
// visit windows in a site's time zone, visit status at a given instant, and the
// re-planning of a subject's visits onto a new schedule version. It is plain Go:
// no HTTP, no database, and no clock of its own (every function that depends on
// "now" takes it).
//
// Study days follow SDTM --DY: the enrollment date is the anchor and day 1,
// the day after is day 2, the day before is day -1; there is no day 0. A window
// is whole local days in the site's zone: it opens at the start of its first
// day and closes at the start of the day after its last day, so a DST change
// inside a window makes it an hour shorter or longer, never shifts its days.
package plan

import (
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // the binary carries its own zone database: a minimal container computes the same windows
)

// Date is a calendar date without a zone (a local date of a site).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ErrBadDate is returned for a string that is not an existing YYYY-MM-DD date.
var ErrBadDate = errors.New("not an existing calendar date (YYYY-MM-DD)")

// ParseDate parses an ISO YYYY-MM-DD date and refuses days that do not exist
// (2025-02-31).
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q: %w", s, ErrBadDate)
	}
	return DateOf(t), nil
}

// DateOf is the calendar date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// Today is the date at instant now in loc.
func Today(now time.Time, loc *time.Location) Date { return DateOf(now.In(loc)) }

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// AddDays returns d moved by n calendar days (months and years roll over).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// DaysSince returns the number of calendar days from o to d (d - o).
func (d Date) DaysSince(o Date) int {
	a := time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC)
	b := time.Date(o.Year, o.Month, o.Day, 12, 0, 0, 0, time.UTC)
	return int(a.Sub(b).Hours() / 24)
}

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.DaysSince(o) < 0 }

// Start is the first instant of d in loc. Where a zone skips midnight (a DST
// change at 00:00), it is the first instant that exists on that day.
func (d Date) Start(loc *time.Location) time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	if DateOf(t) != d { // normalised back into the previous day: midnight did not exist
		t = time.Date(d.Year, d.Month, d.Day, 1, 0, 0, 0, loc)
	}
	return t
}

// LoadZone loads an IANA zone from the embedded database. "Local" and "" are
// refused: a site's zone is always named.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q: not an IANA zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: unknown", name)
	}
	return loc, nil
}

// Lead is how many days before day 1 a plan may start (study day -14, the
// earliest pre-baseline visit), and so how far ahead an enrollment date may be
// given.
const Lead = 14

// Offset is the number of days from the enrollment date to study day d: day 1
// is offset 0, day -1 offset -1 (there is no day 0).
func Offset(studyDay int) int {
	if studyDay > 0 {
		return studyDay - 1
	}
	return studyDay
}

// StudyDay is the study day of date on a plan anchored at enrolled: the
// inverse of Offset.
func StudyDay(enrolled, date Date) int {
	off := date.DaysSince(enrolled)
	if off >= 0 {
		return off + 1
	}
	return off
}

// Visit is a schedule's visit as the domain needs it.
type Visit struct {
	Code     string
	StudyDay int
	Before   int // window days before the planned date
	After    int // window days after the planned date
}

// Window is a visit placed on the calendar of one subject at one site.
type Window struct {
	Planned, Open, Close Date      // local dates in the site's zone, Close included
	OpensAt, ClosesAt    time.Time // start of Open, start of the day after Close (UTC)
}

// WindowFor places v on the calendar of a subject enrolled on enrolled at a
// site in loc.
func WindowFor(enrolled Date, v Visit, loc *time.Location) Window {
	planned := enrolled.AddDays(Offset(v.StudyDay))
	w := Window{Planned: planned, Open: planned.AddDays(-v.Before), Close: planned.AddDays(v.After)}
	w.OpensAt = w.Open.Start(loc).UTC()
	w.ClosesAt = w.Close.AddDays(1).Start(loc).UTC()
	return w
}

// Contains reports whether t lies inside the window: OpensAt <= t < ClosesAt.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.OpensAt) && t.Before(w.ClosesAt)
}

// Closed reports whether the window has closed at now.
func (w Window) Closed(now time.Time) bool { return !now.Before(w.ClosesAt) }

// Status is a planned visit's state.
type Status int32

// The states, numbered as trialhub.trial.v1.SubjectVisitStatus.
const (
	Pending   Status = 1
	Completed Status = 2
	Missed    Status = 3
	Cancelled Status = 4
)

// StatusAt is the state at now of a visit whose stored state is stored
// (Pending, Completed or Cancelled): a pending visit whose window has closed
// is Missed.
func StatusAt(stored Status, w Window, now time.Time) Status {
	if stored == Pending && w.Closed(now) {
		return Missed
	}
	return stored
}

// Planned is a visit already in a subject's plan, for Replan.
type Planned struct {
	ID     string
	Code   string
	Status Status // as of now (StatusAt)
}

// Change is what a re-plan does to a plan.
type Change struct {
	Update map[string]Visit // planned visit id -> its new definition
	Cancel []string         // planned visit ids to cancel
	Add    []Visit          // new visits to plan
}

// Replan moves a plan onto a new schedule version (EXISTING_PLAN_POLICY_REPLAN_PENDING):
// completed, missed and cancelled visits stay as they are; a pending visit whose
// code the new version has takes its definition, unless its new window has
// closed (then it is cancelled: a re-plan never creates a missed visit); a
// pending visit whose code is gone is cancelled; a visit of the new version
// whose code the plan does not hold, or holds only as cancelled, is added
// unless its window has closed.
func Replan(enrolled Date, loc *time.Location, now time.Time, plan []Planned, next []Visit) Change {
	c := Change{Update: map[string]Visit{}}
	byCode := map[string]Visit{}
	for _, v := range next {
		byCode[v.Code] = v
	}
	held := map[string]bool{}
	for _, p := range plan {
		if p.Status != Cancelled {
			held[p.Code] = true
		}
		if p.Status != Pending {
			continue
		}
		v, ok := byCode[p.Code]
		switch {
		case !ok, WindowFor(enrolled, v, loc).Closed(now):
			c.Cancel = append(c.Cancel, p.ID)
		default:
			c.Update[p.ID] = v
		}
	}
	for _, v := range next {
		if !held[v.Code] && !WindowFor(enrolled, v, loc).Closed(now) {
			c.Add = append(c.Add, v)
		}
	}
	return c
}
