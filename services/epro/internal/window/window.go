// Package window decides whether a questionnaire response falls in its visit's
// window: the window in instants from the visit plan (a target study day and days
// before and after, counted in the site's time zone), the verdict on a submission
// from its authored and received times with a grace period for phones that were
// offline, and the compliance state of a visit at a moment. Plain Go: no HTTP, no
// database; the plan itself comes from the trial service.
package window

import (
	"fmt"
	"time"
)

// Window is when a visit may be answered: from Opens (included) to Closes
// (excluded), both instants.
type Window struct {
	Opens, Closes time.Time
}

// Plan is one planned visit of a subject as the trial service sends it: a target
// study day (day 1 = the anchor, usually enrolment; no day 0, as SDTM --DY) and how
// many days before and after it the visit may be done.
type Plan struct {
	TargetDay int
	Before    int // days before the target day, >= 0
	After     int // days after the target day, >= 0
	Anchor    time.Time
	Location  *time.Location // the site's time zone; nil is UTC
}

// DateOf returns the calendar date of a study day, the inverse of deid.StudyDay:
// day 1 is the anchor's date, day -1 the day before it.
func DateOf(anchor time.Time, day int) time.Time {
	offset := day - 1
	if day < 0 {
		offset = day
	}
	y, m, d := anchor.Date()
	return time.Date(y, m, d+offset, 0, 0, 0, 0, anchor.Location())
}

// Window returns the plan's window: from midnight at the start of the first day to
// midnight at the end of the last day, in the site's time zone (so a window keeps
// its days across a daylight-saving change).
func (p Plan) Window() (Window, error) {
	if p.TargetDay == 0 {
		return Window{}, fmt.Errorf("visit plan: target day 0 does not exist (day 1 is the anchor, day -1 the day before)")
	}
	if p.Before < 0 || p.After < 0 {
		return Window{}, fmt.Errorf("visit plan: days before (%d) and after (%d) must not be negative", p.Before, p.After)
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	anchor := p.Anchor.In(loc)
	target := DateOf(anchor, p.TargetDay)
	return Window{
		Opens:  target.AddDate(0, 0, -p.Before),
		Closes: target.AddDate(0, 0, p.After+1),
	}, nil
}

// Verdict is the decision on one submission.
type Verdict int

// Verdicts. OnTime and Late are accepted (Late is flagged on the receipt and in
// analysts' rows); NotYetOpen and AuthoredInFuture are refused and the patient can
// act (wait, fix the clock); Closed is kept in the quarantine: the patient cannot
// fix it.
const (
	OnTime           Verdict = iota + 1 // authored and received in the window
	Late                                // authored in the window, received after it closed but within the grace period
	NotYetOpen                          // authored before the window opened
	Closed                              // authored after the window closed, or received after the grace period
	AuthoredInFuture                    // authored after it was received (beyond the allowed clock skew)
)

var verdictNames = [...]string{"", "on time", "late", "not yet open", "closed", "authored in the future"}

func (v Verdict) String() string {
	if v <= 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("Verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// Accepted reports whether the verdict stores a response.
func (v Verdict) Accepted() bool { return v == OnTime || v == Late }

// ClockSkew is how far a device's authored time may be ahead of the server's
// receive time before it is refused.
const ClockSkew = 5 * time.Minute

// Decide judges a submission authored at authored (the device's clock) and
// received at received (the server's UTC clock). The window is checked against
// authored, as the patient answered then; grace bounds how late an offline phone
// may deliver, so a device clock set back cannot back-fill a closed visit after
// the grace period.
func (w Window) Decide(authored, received time.Time, grace time.Duration) Verdict {
	switch {
	case authored.After(received.Add(ClockSkew)):
		return AuthoredInFuture
	case authored.Before(w.Opens):
		return NotYetOpen
	case !authored.Before(w.Closes):
		return Closed
	case received.Before(w.Closes):
		return OnTime
	case received.Before(w.Closes.Add(grace)):
		return Late
	}
	return Closed
}

// State is a visit's compliance state at a moment.
type State int

// Compliance states.
const (
	NotDue    State = iota + 1 // the window has not opened
	Pending                    // open (or in its grace period) and not answered
	Completed                  // answered
	Missed                     // closed and past its grace period without an answer
)

// At returns the visit's state at now, answered or not. An answer counts whenever
// it came (a late one too).
func (w Window) At(now time.Time, answered bool, grace time.Duration) State {
	switch {
	case answered:
		return Completed
	case now.Before(w.Opens):
		return NotDue
	case now.Before(w.Closes.Add(grace)):
		return Pending
	}
	return Missed
}

// Tally counts visits for a compliance report: Expected are the visits whose
// window has opened; each is Completed, Pending or Missed.
type Tally struct {
	Expected, Completed, Missed, Pending int
}

// Add counts one visit's state.
func (t *Tally) Add(s State) {
	switch s {
	case Completed:
		t.Expected++
		t.Completed++
	case Missed:
		t.Expected++
		t.Missed++
	case Pending:
		t.Expected++
		t.Pending++
	}
}
