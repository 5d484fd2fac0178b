// Package questionnaire is the model of a versioned questionnaire definition, as
// FHIR R4 Questionnaire: items with link ids, types, texts per language, scored
// answer options, bounds, enable-when conditions and nested groups, plus the
// scoring and alert rules of the instrument. It validates a definition
// (Definition.Validate) and a set of answers against one (Definition.Check), each
// returning every problem with its path or item. Plain Go: no HTTP, no database.
//
// A (URL, Version) pair names one definition for ever; a changed definition is a
// new version, and responses stay pinned to Canonical() ("url|version").
package questionnaire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

// Coding is a code from a terminology (LOINC "http://loinc.org" for the
// instruments we ship). It is the scoring package's type, shared by rules and items.
type Coding = scoring.Coding

// Type is the kind of an item, as FHIR R4 Questionnaire.item.type. FHIR's
// attachment and reference types have no counterpart: an attachment can carry a
// photo or a document with identifiers.
type Type int

// Item types. Group and Display take no answer.
const (
	TypeUnset Type = iota
	Group
	Display
	Boolean
	Decimal
	Integer
	Date
	DateTime
	Time
	String
	Text
	URL
	Choice
	OpenChoice
	Quantity
)

var typeNames = [...]string{"unset", "group", "display", "boolean", "decimal", "integer", "date",
	"dateTime", "time", "string", "text", "url", "choice", "open-choice", "quantity"}

// String returns the FHIR code of the type, e.g. "open-choice".
func (t Type) String() string {
	if t < 0 || int(t) >= len(typeNames) {
		return fmt.Sprintf("Type(%d)", int(t))
	}
	return typeNames[t]
}

// ParseType returns the type of a FHIR item.type code, and false for a code the
// model does not support.
func ParseType(code string) (Type, bool) {
	for i, n := range typeNames {
		if i > 0 && n == code {
			return Type(i), true
		}
	}
	return TypeUnset, false
}

// Answerable reports whether items of the type take answers.
func (t Type) Answerable() bool { return t > Display && int(t) < len(typeNames) }

// FreeText reports whether answers of the type are typed by the patient and may
// carry identifiers: string, text, url, and the typed-in value of open-choice.
func (t Type) FreeText() bool { return t == String || t == Text || t == URL }

// Ordered reports whether answers of the type can be compared with < and >.
func (t Type) Ordered() bool {
	return t == Decimal || t == Integer || t == Date || t == DateTime || t == Time || t == Quantity
}

// Localized is an item's text per language, keyed by BCP 47 tag ("en", "es-MX"). The
// definition's Language names the original text; the others are translations.
type Localized map[string]string

// In returns the text in lang, else in fallback (the definition's language), else "".
func (t Localized) In(lang, fallback string) string {
	if s, ok := t[lang]; ok {
		return s
	}
	return t[fallback]
}

// Behavior says how several enable-when conditions combine (FHIR enableBehavior).
type Behavior int

// Enable behaviours; BehaviorUnset is valid with at most one condition.
const (
	BehaviorUnset Behavior = iota
	All
	Any
)

// Operator compares an earlier answer with a condition's answer (FHIR
// enableWhen.operator).
type Operator int

// Enable-when operators.
const (
	OperatorUnset Operator = iota
	Exists
	Equal
	NotEqual
	Greater
	Less
	GreaterOrEqual
	LessOrEqual
)

var operatorNames = [...]string{"unset", "exists", "=", "!=", ">", "<", ">=", "<="}

// String returns the FHIR code of the operator, e.g. ">=".
func (o Operator) String() string {
	if o < 0 || int(o) >= len(operatorNames) {
		return fmt.Sprintf("Operator(%d)", int(o))
	}
	return operatorNames[o]
}

// ParseOperator returns the operator of a FHIR code.
func ParseOperator(code string) (Operator, bool) {
	for i, n := range operatorNames {
		if i > 0 && n == code {
			return Operator(i), true
		}
	}
	return OperatorUnset, false
}

// Condition is one enable-when condition: the item is shown when the answers to
// Question compare true with Answer (for Exists, Answer is a boolean: answered or
// not). With no answer to Question, only Exists false and != hold.
type Condition struct {
	Question string // link_id of an earlier item
	Op       Operator
	Answer   Value
}

// Option is one allowed answer of a choice or open-choice item: a coding, an
// integer or a string, with its score (nil: the option is not scored, e.g. "Prefer
// not to say", which differs from a score of 0).
type Option struct {
	Value Value
	Score *float64
}

// Item is one question, group or display text.
type Item struct {
	LinkID     string // unique across the whole definition
	Code       *Coding
	Prefix     string // e.g. "9."
	Text       Localized
	Type       Type
	Required   bool
	Repeats    bool
	MaxLength  int // typed text only; 0 means the server's limit
	Options    []Option
	Min, Max   *Value  // integer, decimal and date items; nil is unbounded
	Unit       *Coding // the unit of a quantity item (UCUM); replaces the patient's unit text in de-identified views
	Age        bool    // the answer is an age in years: de-identified views report ages over 89 as 90+
	EnableWhen []Condition
	Behavior   Behavior
	Items      []Item // nested items of a group (or follow-ups of a question)
}

// Definition is one version of a questionnaire.
type Definition struct {
	URL         string // canonical URL across versions
	Version     string
	Name        string // computer-friendly, prefixes CSV columns, e.g. "PHQ9"
	Title       string
	Description string // for staff: purpose, recall period, instructions
	Code        *Coding
	Language    string // BCP 47 tag of the original texts
	Copyright   string
	Items       []Item
	Rules       []scoring.Rule
	Alerts      []scoring.Alert
}

// Canonical returns the FHIR canonical reference of this version, "url|version".
func (d *Definition) Canonical() string { return d.URL + "|" + d.Version }

// Walk calls fn for every item in display order (depth first), with the item's
// path in the definition (e.g. "items[1].items[0]"), stopping when fn returns false.
func (d *Definition) Walk(fn func(path string, it *Item) bool) {
	var walk func(prefix string, items []Item) bool
	walk = func(prefix string, items []Item) bool {
		for i := range items {
			p := fmt.Sprintf("%sitems[%d]", prefix, i)
			if !fn(p, &items[i]) || !walk(p+".", items[i].Items) {
				return false
			}
		}
		return true
	}
	walk("", d.Items)
}

// each is Walk without paths, for the hot path: fn sees every item depth first.
func each(items []Item, fn func(it *Item) bool) bool {
	for i := range items {
		if !fn(&items[i]) || !each(items[i].Items, fn) {
			return false
		}
	}
	return true
}

// Item returns the item with the link id, or nil.
func (d *Definition) Item(linkID string) *Item {
	var found *Item
	each(d.Items, func(it *Item) bool {
		if it.LinkID == linkID {
			found = it
		}
		return found == nil
	})
	return found
}

// Option returns the answer option equal to v, or nil.
func (it *Item) Option(v Value) *Option {
	for i := range it.Options {
		if it.Options[i].Value.Equal(v) {
			return &it.Options[i]
		}
	}
	return nil
}

// Digest returns a SHA-256 digest (hex) of the definition's whole content, rules
// and alerts included. Two definitions with the same digest are the same content,
// so a store can refuse a second, different definition under a released
// url|version, and accept the same one again as a no-op. It fails only for a
// definition that Validate refuses (a score that is not a finite number).
func (d *Definition) Digest() (string, error) {
	// encoding/json writes struct fields in declaration order and map keys sorted,
	// so equal content gives equal bytes.
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", d.Canonical(), err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
