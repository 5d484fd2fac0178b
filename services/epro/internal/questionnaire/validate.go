package questionnaire

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
)

// Problem is one fault of a definition or of a set of answers: where (Path in the
// definition, e.g. "items[2].enable_when[0].question"; for answers "answers[3]"),
// which item (LinkID, when one is concerned), which rule was broken (a stable id
// such as "enable_when.later_item") and a message for people. Messages never
// contain answer values.
type Problem struct {
	Path    string
	LinkID  string
	Rule    string
	Message string
}

func (p Problem) String() string {
	if p.LinkID != "" {
		return fmt.Sprintf("%s (item %s): %s [%s]", p.Path, p.LinkID, p.Message, p.Rule)
	}
	return fmt.Sprintf("%s: %s [%s]", p.Path, p.Message, p.Rule)
}

// Invalid is the error of Validate and Check: every problem found, in document order.
type Invalid struct {
	Problems []Problem
}

func (e *Invalid) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s): %s", len(e.Problems), strings.Join(parts, "; "))
}

func errOf(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	return &Invalid{Problems: ps}
}

// MaxDepth is how deeply items may nest (the contract's limit of 5 levels).
const MaxDepth = 5

var (
	linkIDRE  = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	ruleRE    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

type checker struct {
	ps []Problem
}

func (c *checker) add(path, linkID, rule, format string, args ...any) {
	c.ps = append(c.ps, Problem{Path: path, LinkID: linkID, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// Validate checks a definition and returns an *Invalid listing every problem, or
// nil: a canonical URL and version; link ids well-formed and unique across the
// whole tree; texts on all but groups; groups with items and without answers;
// answer options only on choice items, distinct, and scores finite; min <= max of
// the item's own type; enable-when conditions naming an earlier answerable item
// with an answer of a compatible type; at most MaxDepth levels; scoring rules
// over scored items with band tables covering the total's range; alerts on scored
// items or existing totals.
func (d *Definition) Validate() error {
	c := &checker{}
	if u, err := url.Parse(d.URL); d.URL == "" || err != nil || !u.IsAbs() {
		c.add("url", "", "definition.url", "the canonical url must be an absolute URL")
	}
	if !versionRE.MatchString(d.Version) {
		c.add("version", "", "definition.version", "the version must be 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
	}
	if d.Language == "" {
		c.add("language", "", "definition.language", "the language of the texts is required")
	}
	if len(d.Items) == 0 {
		c.add("items", "", "definition.items", "a questionnaire needs at least one item")
	}
	// Items in document order, so that a condition can be checked to name an earlier item.
	seen := map[string]*Item{}
	var walk func(prefix string, items []Item, depth int)
	walk = func(prefix string, items []Item, depth int) {
		for i := range items {
			it := &items[i]
			p := fmt.Sprintf("%sitems[%d]", prefix, i)
			if depth > MaxDepth {
				c.add(p, it.LinkID, "item.depth", "items nest at most %d levels", MaxDepth)
			}
			c.item(p, it, seen, d.Language)
			if linkIDRE.MatchString(it.LinkID) {
				if _, dup := seen[it.LinkID]; dup {
					c.add(p+".link_id", it.LinkID, "item.link_id_unique", "link_id is used by an earlier item")
				} else {
					seen[it.LinkID] = it
				}
			}
			walk(p+".", it.Items, depth+1)
		}
	}
	walk("", d.Items, 1)
	c.rules(d, seen)
	return errOf(c.ps)
}

func (c *checker) item(p string, it *Item, earlier map[string]*Item, lang string) {
	id := it.LinkID
	if !linkIDRE.MatchString(id) {
		c.add(p+".link_id", id, "item.link_id", "link_id must be 1-128 letters, digits or ._:/-")
	}
	if it.Type <= TypeUnset || int(it.Type) >= len(typeNames) {
		c.add(p+".type", id, "item.type", "the item type is missing or unknown")
		return
	}
	if it.Type != Group && it.Text[lang] == "" {
		c.add(p+".text", id, "item.text_required", "text in the questionnaire's language is required for every item except groups")
	}
	switch it.Type {
	case Group:
		if len(it.Items) == 0 {
			c.add(p+".items", id, "item.group_has_items", "a group needs at least one nested item")
		}
		if it.Repeats {
			c.add(p+".repeats", id, "item.group_no_repeats", "repeating groups are not supported")
		}
	case Display:
		if it.Required || it.Repeats || len(it.Items) > 0 {
			c.add(p, id, "item.display_not_answerable", "a display item cannot be required, repeat or hold items")
		}
	}
	if len(it.Options) > 0 && it.Type != Choice && it.Type != OpenChoice {
		c.add(p+".options", id, "item.options_only_for_choice", "answer options are allowed only on choice and open-choice items")
	}
	if it.Type == Choice && len(it.Options) == 0 {
		c.add(p+".options", id, "item.choice_has_options", "a choice item needs at least one answer option")
	}
	for j, o := range it.Options {
		op := fmt.Sprintf("%s.options[%d]", p, j)
		switch k := o.Value.Kind; {
		case k != KindCoding && k != KindInteger && k != KindString:
			c.add(op+".value", id, "option.kind", "an answer option is a coding, an integer or a string")
		case o.Value.WellFormed() != nil:
			c.add(op+".value", id, "option.value", "answer option: %v", o.Value.WellFormed())
		}
		for _, q := range it.Options[:j] {
			if q.Value.Equal(o.Value) {
				c.add(op+".value", id, "option.unique", "the same answer option appears twice")
				break
			}
		}
		if o.Score != nil && (math.IsNaN(*o.Score) || math.IsInf(*o.Score, 0)) {
			c.add(op+".score", id, "option.score_finite", "a score must be a finite number")
		}
	}
	if it.MaxLength < 0 || it.MaxLength > 0 && !it.Type.FreeText() && it.Type != OpenChoice {
		c.add(p+".max_length", id, "item.max_length", "max_length is a positive length allowed only on string, text, url and open-choice items")
	}
	bounded := it.Type == Integer || it.Type == Decimal || it.Type == Date
	for _, b := range []struct {
		name string
		v    *Value
	}{{"min", it.Min}, {"max", it.Max}} {
		if b.v == nil {
			continue
		}
		switch {
		case !bounded:
			c.add(p+"."+b.name, id, "item.bounds_type", "%s is allowed only on integer, decimal and date items", b.name)
		case !b.v.Kind.Fits(it.Type) || b.v.WellFormed() != nil:
			c.add(p+"."+b.name, id, "item.bounds_type", "%s must be a well-formed value of the item's own type %s", b.name, it.Type)
		}
	}
	if bounded && it.Min != nil && it.Max != nil && it.Min.Kind.Fits(it.Type) && it.Max.Kind.Fits(it.Type) {
		if cmp, ok := it.Min.Compare(*it.Max); ok && cmp > 0 {
			c.add(p, id, "item.min_lte_max", "min must not be greater than max")
		}
	}
	if len(it.EnableWhen) > 1 && it.Behavior == BehaviorUnset {
		c.add(p+".enable_behavior", id, "item.enable_behavior_required", "enable_behavior (all or any) is required with more than one condition")
	}
	if it.Behavior < BehaviorUnset || it.Behavior > Any {
		c.add(p+".enable_behavior", id, "item.enable_behavior", "enable_behavior is all or any")
	}
	for j, cond := range it.EnableWhen {
		c.condition(fmt.Sprintf("%s.enable_when[%d]", p, j), id, cond, earlier)
	}
}

func (c *checker) condition(p, id string, cond Condition, earlier map[string]*Item) {
	q, ok := earlier[cond.Question]
	switch {
	case cond.Question == id:
		c.add(p+".question", id, "enable_when.not_self", "a condition cannot refer to the item itself")
		return
	case !ok:
		c.add(p+".question", id, "enable_when.earlier_item", "the condition names no earlier item (%q)", cond.Question)
		return
	case !q.Type.Answerable():
		c.add(p+".question", id, "enable_when.answerable", "the condition names a %s item, which takes no answer", q.Type)
		return
	}
	if cond.Op <= OperatorUnset || int(cond.Op) >= len(operatorNames) {
		c.add(p+".operator", id, "enable_when.operator", "the operator is missing or unknown")
		return
	}
	a := cond.Answer
	if cond.Op == Exists {
		if a.Kind != KindBoolean {
			c.add(p+".answer", id, "enable_when.exists_takes_boolean", "the exists operator needs a boolean answer")
		}
		return
	}
	if !a.Kind.Fits(q.Type) || a.WellFormed() != nil {
		c.add(p+".answer", id, "enable_when.answer_type", "the answer does not fit item %s of type %s", q.LinkID, q.Type)
		return
	}
	if q.Type == Choice && q.Option(a) == nil {
		c.add(p+".answer", id, "enable_when.answer_option", "the answer is none of item %s's options", q.LinkID)
	}
	if cond.Op >= Greater && !q.Type.Ordered() {
		c.add(p+".operator", id, "enable_when.ordered", "%v needs an ordered item (integer, decimal, date, dateTime, time, quantity), item %s is %s", cond.Op, q.LinkID, q.Type)
	}
}

// scoreRange is the lowest and highest score one answer to the item can have, and
// whether every score is a whole number; ok is false for an unscored item.
func scoreRange(it *Item) (lo, hi float64, integral, ok bool) {
	switch it.Type {
	case Choice, OpenChoice:
		if it.Repeats {
			return 0, 0, false, false
		}
		lo, hi, integral = math.Inf(1), math.Inf(-1), true
		for _, o := range it.Options {
			if o.Score == nil {
				continue
			}
			ok = true
			lo, hi = min(lo, *o.Score), max(hi, *o.Score)
			integral = integral && *o.Score == math.Trunc(*o.Score)
		}
		return lo, hi, integral, ok
	case Integer, Decimal:
		lo, hi = math.Inf(-1), math.Inf(1)
		if it.Min != nil {
			lo, _ = it.Min.Float()
		}
		if it.Max != nil {
			hi, _ = it.Max.Float()
		}
		return lo, hi, it.Type == Integer, !it.Repeats
	}
	return 0, 0, false, false
}

func (c *checker) rules(d *Definition, items map[string]*Item) {
	names := map[string]bool{}
	for i, r := range d.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		if !ruleRE.MatchString(r.Name) {
			c.add(p+".name", "", "rule.name", "a rule name is a lower-case token such as total")
		} else if names[r.Name] {
			c.add(p+".name", "", "rule.name_unique", "rule name %q is used twice", r.Name)
		}
		names[r.Name] = true
		if len(r.LinkIDs) == 0 {
			c.add(p+".link_ids", "", "rule.link_ids", "a rule sums at least one item")
		}
		lo, hi, integral, scored := 0.0, 0.0, true, true
		used := map[string]bool{}
		for j, id := range r.LinkIDs {
			ip := fmt.Sprintf("%s.link_ids[%d]", p, j)
			it, ok := items[id]
			if used[id] {
				c.add(ip, id, "rule.link_ids_unique", "the item is summed twice")
				continue
			}
			used[id] = true
			if !ok {
				c.add(ip, id, "rule.unknown_item", "the rule names no item of the questionnaire")
				scored = false
				continue
			}
			l, h, in, ok := scoreRange(it)
			if !ok {
				c.add(ip, id, "rule.scored_item", "a rule sums single-answer choice items with scored options, or integer and decimal items; this is %s", it.Type)
				scored = false
				continue
			}
			lo, hi, integral = lo+l, hi+h, integral && in
		}
		if !scored || len(r.Bands) == 0 {
			continue
		}
		if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			c.add(p+".bands", "", "rule.bounded_total", "bands need a bounded total: give the summed integer and decimal items min and max")
			continue
		}
		for _, bp := range r.CheckBands(lo, hi, integral) {
			c.add(p+"."+bp.Path, "", bp.Rule, "%s", bp.Message)
		}
	}
	alerts := map[string]bool{}
	for i, a := range d.Alerts {
		p := fmt.Sprintf("alerts[%d]", i)
		if !ruleRE.MatchString(a.Name) {
			c.add(p+".name", "", "alert.name", "an alert name is a lower-case token such as item9_self_harm")
		} else if alerts[a.Name] {
			c.add(p+".name", "", "alert.name_unique", "alert name %q is used twice", a.Name)
		}
		alerts[a.Name] = true
		for _, ap := range a.CheckAlert(d.Rules) {
			c.add(p+"."+ap.Path, a.LinkID, ap.Rule, "%s", ap.Message)
		}
		if a.LinkID != "" {
			if it, ok := items[a.LinkID]; !ok {
				c.add(p+".link_id", a.LinkID, "alert.unknown_item", "the alert names no item of the questionnaire")
			} else if _, _, _, ok := scoreRange(it); !ok {
				c.add(p+".link_id", a.LinkID, "alert.scored_item", "an item alert tests a scored item; this is %s", it.Type)
			}
		}
	}
}
