package questionnaire

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

// Answer is the answer to one item: one value, or several for a repeating item.
type Answer struct {
	LinkID string
	Values []Value
}

// DefaultMaxLength is the longest typed answer, in characters, when an item sets no
// MaxLength (the contract's server limit).
const DefaultMaxLength = 4000

// Check validates a set of answers against the definition and returns an *Invalid
// naming each bad item (LinkID) and the rule it breaks, or nil: every answer names
// an answerable item once; no answer to an item disabled by its enable-when
// conditions; every enabled required item answered; one value unless the item
// repeats; each value of the item's type, well-formed, within min/max and
// max_length, and one of the options of a choice item (an open-choice item also
// takes a typed string).
func (d *Definition) Check(answers []Answer) error {
	c := &checker{}
	items := d.index()
	byID := map[string]int{}
	for i, a := range answers {
		p := "answers[" + strconv.Itoa(i) + "]"
		it := items[a.LinkID]
		switch {
		case it == nil:
			c.add(p+".link_id", a.LinkID, "answer.unknown_item", "no item of the questionnaire has this link_id")
			continue
		case !it.Type.Answerable():
			c.add(p+".link_id", a.LinkID, "answer.not_answerable", "a %s item takes no answer", it.Type)
			continue
		}
		if _, dup := byID[a.LinkID]; dup {
			c.add(p+".link_id", a.LinkID, "answer.duplicate_item", "the item is answered twice; send one answer with several values for a repeating item")
			continue
		}
		byID[a.LinkID] = i
	}
	enabled := d.enabled(answers, byID)
	each(d.Items, func(it *Item) bool {
		if !it.Type.Answerable() {
			return true
		}
		i, answered := byID[it.LinkID]
		switch {
		case answered && !enabled[it.LinkID]:
			c.add(fmt.Sprintf("answers[%d]", i), it.LinkID, "answer.disabled", "the item is not enabled by the other answers, so it cannot be answered")
		case !answered && enabled[it.LinkID] && it.Required:
			c.add("answers", it.LinkID, "answer.required", "the item is required")
		case answered:
			c.values("answers["+strconv.Itoa(i)+"]", it, answers[i].Values)
		}
		return true
	})
	return errOf(c.ps)
}

func (c *checker) values(p string, it *Item, vs []Value) {
	id := it.LinkID
	if len(vs) == 0 {
		c.add(p+".values", id, "answer.empty", "an answer needs at least one value")
	}
	if len(vs) > 1 && !it.Repeats {
		c.add(p+".values", id, "answer.repeats", "the item takes one value, got %d", len(vs))
	}
	for j, v := range vs {
		vp := p + ".values[" + strconv.Itoa(j) + "]"
		if !v.Kind.Fits(it.Type) {
			c.add(vp, id, "answer.type", "a %s item does not take a %s value", it.Type, v.Kind)
			continue
		}
		if err := v.WellFormed(); err != nil {
			c.add(vp, id, "answer.value", "%v", err)
			continue
		}
		for _, w := range vs[:j] {
			if w.Equal(v) {
				c.add(vp, id, "answer.duplicate_value", "the same value is given twice")
				break
			}
		}
		switch it.Type {
		case Choice:
			if it.Option(v) == nil {
				c.add(vp, id, "answer.option", "the value is none of the item's answer options")
			}
		case OpenChoice:
			if v.Kind != KindString && it.Option(v) == nil {
				c.add(vp, id, "answer.option", "the value is none of the item's answer options (a typed answer is a string)")
			}
		}
		if it.Min != nil {
			if cmp, ok := v.Compare(*it.Min); ok && cmp < 0 {
				c.add(vp, id, "answer.min", "the value is below the item's minimum")
			}
		}
		if it.Max != nil {
			if cmp, ok := v.Compare(*it.Max); ok && cmp > 0 {
				c.add(vp, id, "answer.max", "the value is above the item's maximum")
			}
		}
		if v.Kind == KindString || v.Kind == KindURI {
			limit := it.MaxLength
			if limit <= 0 {
				limit = DefaultMaxLength
			}
			if n := utf8.RuneCountInString(v.Str); n > limit {
				c.add(vp, id, "answer.max_length", "the text has %d characters, more than the item's %d", n, limit)
			}
		}
	}
}

// index returns every item by link id (the first, if a definition that failed
// Validate repeats one).
func (d *Definition) index() map[string]*Item {
	m := map[string]*Item{}
	each(d.Items, func(it *Item) bool {
		if _, dup := m[it.LinkID]; !dup {
			m[it.LinkID] = it
		}
		return true
	})
	return m
}

// Enabled reports, for every item, whether it is enabled by the given answers: its
// parent is enabled and its conditions hold, combined by its behaviour. Answers to
// disabled items are ignored when evaluating later conditions, as in FHIR.
func (d *Definition) Enabled(answers []Answer) map[string]bool {
	byID := map[string]int{}
	for i, a := range answers {
		if _, dup := byID[a.LinkID]; !dup {
			byID[a.LinkID] = i
		}
	}
	return d.enabled(answers, byID)
}

func (d *Definition) enabled(answers []Answer, byID map[string]int) map[string]bool {
	on := map[string]bool{}
	var walk func(items []Item, parent bool)
	walk = func(items []Item, parent bool) {
		for i := range items {
			it := &items[i]
			e := parent && holds(it, func(q string) []Value {
				if i, ok := byID[q]; ok && on[q] {
					return answers[i].Values
				}
				return nil
			})
			on[it.LinkID] = e
			walk(it.Items, e)
		}
	}
	walk(d.Items, true)
	return on
}

func holds(it *Item, answersTo func(string) []Value) bool {
	if len(it.EnableWhen) == 0 {
		return true
	}
	for _, c := range it.EnableWhen {
		h := c.holds(answersTo(c.Question))
		if h && it.Behavior == Any {
			return true
		}
		if !h && it.Behavior != Any {
			return false
		}
	}
	return it.Behavior != Any
}

func (c Condition) holds(vs []Value) bool {
	switch c.Op {
	case Exists:
		return (len(vs) > 0) == c.Answer.Bool
	case NotEqual:
		for _, v := range vs {
			if v.Equal(c.Answer) {
				return false
			}
		}
		return true
	}
	for _, v := range vs {
		switch c.Op {
		case Equal:
			if v.Equal(c.Answer) {
				return true
			}
		default:
			cmp, ok := v.Compare(c.Answer)
			if ok && (c.Op == Greater && cmp > 0 || c.Op == Less && cmp < 0 || c.Op == GreaterOrEqual && cmp >= 0 || c.Op == LessOrEqual && cmp <= 0) {
				return true
			}
		}
	}
	return false
}

// ItemScore returns the score of an answer to the item: the sum of the scores of
// the chosen options (false if one has no score), or the value itself for integer
// and decimal items.
func (it *Item) ItemScore(vs []Value) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	var sum float64
	for _, v := range vs {
		switch it.Type {
		case Choice, OpenChoice:
			o := it.Option(v)
			if o == nil || o.Score == nil {
				return 0, false
			}
			sum += *o.Score
		case Integer, Decimal:
			f, ok := v.Float()
			if !ok {
				return 0, false
			}
			sum += f
		default:
			return 0, false
		}
	}
	return sum, true
}

// Score computes the definition's totals, bands and alerts for answers that passed
// Check: scores of enabled items, disabled items skipped by the rules.
func (d *Definition) Score(answers []Answer) scoring.Result {
	on := d.Enabled(answers)
	items := scoring.Items{Scores: map[string]float64{}, Disabled: map[string]bool{}}
	for id, e := range on {
		if !e {
			items.Disabled[id] = true
		}
	}
	byID := d.index()
	for _, a := range answers {
		if it := byID[a.LinkID]; it != nil && on[a.LinkID] {
			if s, ok := it.ItemScore(a.Values); ok {
				items.Scores[a.LinkID] = s
			}
		}
	}
	return scoring.Compute(d.Rules, d.Alerts, items)
}
