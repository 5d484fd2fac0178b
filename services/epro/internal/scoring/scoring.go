// Package scoring computes the totals, severity bands and alerts of a questionnaire
// response from the scores of its items: sums of option scores over named items
// (PHQ-9, GAD-7), bands that label a total, and alerts on an item's score (PHQ-9
// item 9 > 0) or on a total. It is plain Go over numbers: it knows items only by
// link_id, and the questionnaire package turns answers into item scores.
package scoring

import (
	"fmt"
	"math"
	"slices"
)

// Coding is a code from a terminology, as FHIR R4 Coding (e.g. LOINC
// "http://loinc.org" 44261-6, the PHQ-9 total). It is declared here, in the leaf
// package, so that scoring rules and questionnaire items share one type.
type Coding struct {
	System  string
	Code    string
	Display string
}

// Band is a labelled range of a total: a total t falls in the band when
// Min <= t <= Max (both ends included), e.g. PHQ-9 10-14 "Moderate".
type Band struct {
	Min, Max float64
	Label    string
	Code     *Coding // unset when the instrument defines no code for the band
}

// Rule computes a total as the sum of the scores of the named items and labels it
// with a band. The total exists only when every named item that is enabled has a
// score; a disabled item contributes nothing.
type Rule struct {
	Name    string // unique within the questionnaire, e.g. "total"
	Title   string // e.g. "PHQ-9 total score"
	Code    *Coding
	LinkIDs []string // the items summed, e.g. "1" to "9"
	Bands   []Band   // in ascending order; empty when the total has no bands
}

// Op compares a score with a threshold.
type Op int

// The comparisons of an alert, as the contract's ComparisonOperator.
const (
	OpUnset Op = iota
	OpEqual
	OpNotEqual
	OpGreater
	OpLess
	OpGreaterOrEqual
	OpLessOrEqual
)

var opNames = [...]string{"unset", "=", "!=", ">", "<", ">=", "<="}

// String returns the operator's symbol, e.g. ">=".
func (o Op) String() string {
	if o < 0 || int(o) >= len(opNames) {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Compare reports whether score o threshold holds, e.g. 1 > 0. An unknown operator
// never holds.
func (o Op) Compare(score, threshold float64) bool {
	switch o {
	case OpEqual:
		return score == threshold
	case OpNotEqual:
		return score != threshold
	case OpGreater:
		return score > threshold
	case OpLess:
		return score < threshold
	case OpGreaterOrEqual:
		return score >= threshold
	case OpLessOrEqual:
		return score <= threshold
	}
	return false
}

// Priority is how urgently the site must act on an alert.
type Priority int

// Alert priorities, as the contract's AlertPriority.
const (
	PriorityUnset Priority = iota
	PriorityRoutine
	PriorityUrgent
)

// Alert raises an alert when one item's score (LinkID set) or one rule's total
// (Total set) compares true with Threshold. Exactly one of LinkID and Total is set.
type Alert struct {
	Name           string // unique within the questionnaire, e.g. "item9_self_harm"
	Title          string // shown to site staff
	LinkID         string // the item whose score is tested
	Total          string // the name of the rule whose total is tested
	Op             Op
	Threshold      float64
	Priority       Priority
	PatientMessage string // shown on the patient's receipt when it fires; may be empty
}

// Total is a rule's result on one response.
type Total struct {
	Rule  string
	Known bool    // false when an enabled item of the rule has no score
	Value float64 // meaningful only when Known
	Band  *Band   // the band the value falls in; nil when unknown or outside all bands
}

// Result is what a response scores: one Total per rule, in rule order, and the
// alerts that fired, in alert order.
type Result struct {
	Totals []Total
	Fired  []Alert
}

// Total returns the total of the named rule and whether the rule exists.
func (r Result) Total(name string) (Total, bool) {
	for _, t := range r.Totals {
		if t.Rule == name {
			return t, true
		}
	}
	return Total{}, false
}

// Items are the scores of one response's items, by link_id, and which items were
// disabled by their enable-when conditions. An item missing from Scores and not
// Disabled is unanswered (or answered with an option that has no score).
type Items struct {
	Scores   map[string]float64
	Disabled map[string]bool
}

// Compute scores a response: each rule's total and band, then the alerts. An alert
// on an item or total that has no score does not fire.
func Compute(rules []Rule, alerts []Alert, items Items) Result {
	var res Result
	for _, r := range rules {
		t := Total{Rule: r.Name, Known: true}
		for _, id := range r.LinkIDs {
			if items.Disabled[id] {
				continue
			}
			s, ok := items.Scores[id]
			if !ok {
				t.Known, t.Value = false, 0
				break
			}
			t.Value += s
		}
		if t.Known {
			t.Band = r.BandOf(t.Value)
		}
		res.Totals = append(res.Totals, t)
	}
	for _, a := range alerts {
		var score float64
		var ok bool
		if a.LinkID != "" {
			score, ok = items.Scores[a.LinkID]
			ok = ok && !items.Disabled[a.LinkID]
		} else if t, found := res.Total(a.Total); found && t.Known {
			score, ok = t.Value, true
		}
		if ok && a.Op.Compare(score, a.Threshold) {
			res.Fired = append(res.Fired, a)
		}
	}
	return res
}

// BandOf returns the band the total falls in, or nil.
func (r Rule) BandOf(total float64) *Band {
	for i := range r.Bands {
		if b := &r.Bands[i]; b.Min <= total && total <= b.Max {
			return b
		}
	}
	return nil
}

// Problem is one fault in a band table or alert, with the path of the faulty part
// relative to the rule (e.g. "bands[2].min") and a stable rule id.
type Problem struct {
	Path    string
	Rule    string
	Message string
}

// CheckBands checks a rule's band table against the range of its total, min..max
// (e.g. 0..27 for the PHQ-9): bands have whole-number ends with Min <= Max, come in
// ascending order, are contiguous (each starts one above where the previous ended,
// so no whole-number total falls between two bands) and together cover exactly
// min..max. Because both ends of a band are included, contiguity is defined only
// for whole-number totals: integral says whether every total the rule can compute
// is a whole number, and bands over fractional totals are refused. An empty table
// is valid (a total without bands).
func (r Rule) CheckBands(min, max float64, integral bool) []Problem {
	if len(r.Bands) == 0 {
		return nil
	}
	var ps []Problem
	add := func(path, rule, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	if !integral {
		add("bands", "bands.integral_total", "bands need a total that is always a whole number; an item of this rule scores fractions")
		return ps
	}
	seen := map[string]bool{}
	for i, b := range r.Bands {
		p := fmt.Sprintf("bands[%d]", i)
		if b.Label == "" {
			add(p+".label", "band.label_required", "a band needs a label")
		} else if seen[b.Label] {
			add(p+".label", "band.label_unique", "band label %q is used twice", b.Label)
		}
		seen[b.Label] = true
		if !whole(b.Min) || !whole(b.Max) {
			add(p, "band.whole_numbers", "band ends must be whole numbers, got %g-%g", b.Min, b.Max)
			continue
		}
		if b.Min > b.Max {
			add(p, "band.min_lte_max", "band min %g is greater than its max %g", b.Min, b.Max)
			continue
		}
		if i == 0 {
			if b.Min != min {
				add(p+".min", "bands.cover_min", "the first band starts at %g, but the lowest total is %g", b.Min, min)
			}
		} else if prev := r.Bands[i-1]; whole(prev.Max) && b.Min != prev.Max+1 {
			if b.Min <= prev.Max {
				add(p+".min", "bands.overlap", "band starts at %g, inside or before the previous band (ends at %g)", b.Min, prev.Max)
			} else {
				add(p+".min", "bands.gap", "band starts at %g, leaving %g-%g in no band", b.Min, prev.Max+1, b.Min-1)
			}
		}
		if i == len(r.Bands)-1 && b.Max != max {
			add(p+".max", "bands.cover_max", "the last band ends at %g, but the highest total is %g", b.Max, max)
		}
	}
	return ps
}

func whole(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) && f == math.Trunc(f) }

// CheckAlert checks one alert against the rules it may name: exactly one trigger, an
// operator, a priority and, for a total trigger, an existing rule. Whether LinkID
// names a scored item is the questionnaire's check, which knows the items.
func (a Alert) CheckAlert(rules []Rule) []Problem {
	var ps []Problem
	switch {
	case a.LinkID == "" && a.Total == "":
		ps = append(ps, Problem{Path: "trigger", Rule: "alert.trigger_required", Message: "an alert needs an item or a total to test"})
	case a.LinkID != "" && a.Total != "":
		ps = append(ps, Problem{Path: "trigger", Rule: "alert.one_trigger", Message: "an alert tests either an item or a total, not both"})
	case a.Total != "" && !slices.ContainsFunc(rules, func(r Rule) bool { return r.Name == a.Total }):
		ps = append(ps, Problem{Path: "total", Rule: "alert.unknown_total", Message: fmt.Sprintf("no scoring rule is named %q", a.Total)})
	}
	if a.Op <= OpUnset || a.Op > OpLessOrEqual {
		ps = append(ps, Problem{Path: "op", Rule: "alert.op_required", Message: "an alert needs a comparison operator"})
	}
	if a.Priority != PriorityRoutine && a.Priority != PriorityUrgent {
		ps = append(ps, Problem{Path: "priority", Rule: "alert.priority_required", Message: "an alert needs a priority (routine or urgent)"})
	}
	if math.IsNaN(a.Threshold) || math.IsInf(a.Threshold, 0) {
		ps = append(ps, Problem{Path: "threshold", Rule: "alert.threshold_finite", Message: "an alert threshold must be a finite number"})
	}
	return ps
}
