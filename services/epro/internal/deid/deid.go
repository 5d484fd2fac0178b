// Package deid de-identifies questionnaire answers for analysts and investigators,
// after HIPAA Safe Harbor (45 CFR 164.514(b)(2)) and the SDTM study-day convention:
// free text and URLs withheld unless the caller may see them (withheld, reviewed
// only, or all), patient-supplied displays and units replaced by the definition's,
// ages over 89 reported as 90+, calendar dates replaced by relative study days.
// It also escapes CSV cells against formula injection. Plain Go: no HTTP, no
// database.
package deid

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

// FreeText is how much free text (string, text and url answers, and the typed-in
// value of an open-choice item) a caller may see. The zero value withholds it all.
type FreeText int

// Free-text visibility, three-way as the contract review asked: analysts get
// Withhold, and authorised site staff ReviewedOnly or All, so an unreviewed
// comment such as a wish to die can still reach the site.
const (
	Withhold     FreeText = iota // no free text
	ReviewedOnly                 // free text a reviewer has released
	All                          // all free text except redacted
)

// Review is the state of an answer's free text in the review step.
type Review int

// Review states; the zero value is Unreviewed.
const (
	Unreviewed Review = iota
	Reviewed          // read and released by a reviewer
	Redacted          // removed by a reviewer, with a reason kept elsewhere
)

// Withheld says why an answer's values are not shown, as the contract's
// WithheldReason.
type Withheld int

// Withheld reasons; None means every value is shown.
const (
	None                 Withheld = iota
	FreeTextUnreviewed            // free text not yet reviewed
	FreeTextNotRequested          // the caller may not see free text
	FreeTextRedacted              // a reviewer removed it
	CalendarDate                  // a date, shown as StudyDays instead
)

// AgeCap is the age reported for every age over 89 (Safe Harbor: "all ages over
// 89 ... aggregated into a single category of age 90 or older").
const AgeCap = 90

// Policy is what one caller may see and how dates become study days.
type Policy struct {
	FreeText FreeText
	// Start is day 1 of the subject's study days (the reference start, e.g.
	// enrollment), read as a calendar date in Location.
	Start time.Time
	// Location is the site's time zone, in which date-time answers fall on a day;
	// nil means UTC.
	Location *time.Location
}

// Answer is one de-identified answer: the values that may be shown, the study days
// that replace its dates, its score, and why values were withheld.
type Answer struct {
	LinkID    string
	Values    []q.Value
	StudyDays []int
	Score     *float64
	Withheld  Withheld
	AgeCapped bool // Values holds AgeCap in place of an age over 89: show it as "90+"
}

// StudyDay returns the study day of a calendar date, as SDTM --DY: the reference
// start is day 1, the day after day 2, the day before day -1; there is no day 0.
// Only the calendar dates of start and d count, not their clocks or zones.
func StudyDay(start, d time.Time) int {
	s := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	e := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	diff := int((e.Unix() - s.Unix()) / 86400)
	if diff >= 0 {
		return diff + 1
	}
	return diff
}

func (p Policy) loc() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Day returns the study day on which an instant falls in the policy's time zone.
func (p Policy) Day(t time.Time) int {
	return StudyDay(p.Start.In(p.loc()), t.In(p.loc()))
}

// DateDay returns the study day of a calendar date answer (a date has no zone;
// Start is read in the policy's time zone).
func (p Policy) DateDay(d time.Time) int {
	return StudyDay(p.Start.In(p.loc()), d)
}

// Response de-identifies every answer of a response, in the order given, with the
// review state of each item's free text (missing:
// Unreviewed). Answers to unknown items are dropped: Check refuses them before
// storage, so none is ever stored.
func (p Policy) Response(d *q.Definition, answers []q.Answer, reviews map[string]Review) []Answer {
	var out []Answer
	for _, a := range answers {
		if it := d.Item(a.LinkID); it != nil {
			out = append(out, p.Answer(it, a, reviews[a.LinkID]))
		}
	}
	return out
}

// Answer de-identifies one answer to item it.
func (p Policy) Answer(it *q.Item, a q.Answer, review Review) Answer {
	out := Answer{LinkID: a.LinkID}
	if s, ok := it.ItemScore(a.Values); ok {
		out.Score = &s
	}
	for _, v := range a.Values {
		switch {
		case v.Kind == q.KindDate:
			if d, err := time.Parse(time.DateOnly, v.Str); err == nil {
				out.StudyDays = append(out.StudyDays, p.DateDay(d))
			}
			out.Withheld = CalendarDate
		case v.Kind == q.KindDateTime:
			out.StudyDays = append(out.StudyDays, p.Day(v.Instant))
			out.Withheld = CalendarDate
		// Any string that is not one of the definition's options was typed by the
		// patient, whatever the item type says.
		case v.Kind == q.KindString && (it.Type.FreeText() || it.Option(v) == nil),
			v.Kind == q.KindURI:
			if w := p.freeText(review); w != None {
				out.Withheld = w
				continue
			}
			out.Values = append(out.Values, v)
		case v.Kind == q.KindCoding:
			out.Values = append(out.Values, q.Code(definitionCoding(it, v.Coding)))
		case v.Kind == q.KindQuantity:
			out.Values = append(out.Values, q.Quant(definitionUnit(it, v.Amount)))
		case it.Age && (v.Kind == q.KindInteger || v.Kind == q.KindDecimal):
			if f, ok := v.Float(); ok && math.Floor(f) > AgeCap-1 {
				out.Values = append(out.Values, q.Int(AgeCap))
				out.AgeCapped = true
				continue
			}
			out.Values = append(out.Values, v)
		default:
			out.Values = append(out.Values, v)
		}
	}
	return out
}

func (p Policy) freeText(r Review) Withheld {
	switch {
	case r == Redacted:
		return FreeTextRedacted
	case p.FreeText == All:
		return None
	case p.FreeText == ReviewedOnly && r == Reviewed:
		return None
	case p.FreeText == ReviewedOnly:
		return FreeTextUnreviewed
	}
	return FreeTextNotRequested
}

// definitionCoding returns the coding with the display of the item's matching
// option; a patient-supplied display is never passed on (no matching option: no
// display).
func definitionCoding(it *q.Item, c q.Coding) q.Coding {
	c.Display = ""
	if o := it.Option(q.Code(c)); o != nil {
		c.Display = o.Value.Coding.Display
	}
	return c
}

// definitionUnit returns the amount with the item's unit in place of the unit text
// the patient's device sent; without an item unit the coded unit stays and its code
// is shown as the unit.
func definitionUnit(it *q.Item, a q.Amount) q.Amount {
	if it.Unit != nil {
		a.System, a.Code, a.Unit = it.Unit.System, it.Unit.Code, it.Unit.Display
		if a.Unit == "" {
			a.Unit = it.Unit.Code
		}
		return a
	}
	a.Unit = a.Code
	return a
}

var plainNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// CSVCell escapes one CSV cell against formula injection (OWASP "CSV Injection"):
// a cell beginning with =, +, -, @, a tab or a carriage return is prefixed with a
// single quote, so a spreadsheet shows it as text instead of running it. A plain
// number such as a negative study day "-3" is left as it is: it is no formula and
// analysts need it numeric. Quoting of commas and quotes is the CSV writer's job.
func CSVCell(s string) string {
	if s == "" || plainNumber.MatchString(s) {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// Cell renders the answer as one CSV cell, escaped with CSVCell: booleans, numbers,
// times, texts and URIs as they are; a coding as its code (the codebook gives the
// definition's display); a quantity as its amount (the codebook gives the unit); an
// age over 89 as "90+"; a date as its study day. Several values (a repeating item)
// are joined with "|". A withheld value is left out: the cell is empty when nothing
// may be shown, and the row's withheld column says why.
func (a Answer) Cell() string {
	var parts []string
	for _, v := range a.Values {
		switch v.Kind {
		case q.KindBoolean:
			parts = append(parts, strconv.FormatBool(v.Bool))
		case q.KindInteger:
			if a.AgeCapped {
				parts = append(parts, strconv.Itoa(AgeCap)+"+")
				continue
			}
			parts = append(parts, strconv.FormatInt(v.Int, 10))
		case q.KindCoding:
			parts = append(parts, v.Coding.Code)
		case q.KindQuantity:
			parts = append(parts, v.Amount.Value)
		default:
			parts = append(parts, v.Str)
		}
	}
	for _, d := range a.StudyDays {
		parts = append(parts, strconv.Itoa(d))
	}
	return CSVCell(strings.Join(parts, "|"))
}
