package questionnaire

import (
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"time"
)

// Kind is which variant of a Value is set, as FHIR answer value[x].
type Kind int

// Value kinds.
const (
	KindUnset Kind = iota
	KindBoolean
	KindDecimal
	KindInteger
	KindDate
	KindDateTime
	KindTime
	KindString
	KindURI
	KindCoding
	KindQuantity
)

var kindNames = [...]string{"unset", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "uri", "coding", "quantity"}

// String returns the FHIR suffix of the kind, e.g. "coding" for valueCoding.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Amount is the answer to a quantity item: an amount with its unit; Value is an exact decimal string ("72.5").
type Amount struct {
	Value  string
	Unit   string // as shown to (or typed by) the patient
	System string // normally UCUM, http://unitsofmeasure.org
	Code   string
}

// Value is one answer value (or option value, bound, condition answer). Exactly the
// field of its Kind is meaningful. Decimals are kept as exact strings, dates as
// ISO "YYYY-MM-DD" and times as "hh:mm:ss", so the patient's digits are never
// rounded through a float.
type Value struct {
	Kind    Kind
	Bool    bool
	Int     int64
	Str     string // decimal, date, time, string or uri
	Instant time.Time
	Coding  Coding
	Amount  Amount
}

// Constructors of each kind.
func Bool(b bool) Value         { return Value{Kind: KindBoolean, Bool: b} }
func Int(i int64) Value         { return Value{Kind: KindInteger, Int: i} }
func Dec(s string) Value        { return Value{Kind: KindDecimal, Str: s} }
func DateOf(s string) Value     { return Value{Kind: KindDate, Str: s} }
func Instant(t time.Time) Value { return Value{Kind: KindDateTime, Instant: t} }
func TimeOf(s string) Value     { return Value{Kind: KindTime, Str: s} }
func Str(s string) Value        { return Value{Kind: KindString, Str: s} }
func URI(s string) Value        { return Value{Kind: KindURI, Str: s} }
func Code(c Coding) Value       { return Value{Kind: KindCoding, Coding: c} }
func Quant(a Amount) Value      { return Value{Kind: KindQuantity, Amount: a} }
func (v Value) numeric() bool   { return v.Kind == KindInteger || v.Kind == KindDecimal }
func ratOf(s string) (*big.Rat, bool) {
	if !decimalRE.MatchString(s) {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

var (
	// FHIR decimal without exponent, at most 18 digits each side (the contract's rule).
	decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$`)
	timeRE    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`)
)

// rat returns a numeric value as an exact rational.
func (v Value) rat() (*big.Rat, bool) {
	switch v.Kind {
	case KindInteger:
		return new(big.Rat).SetInt64(v.Int), true
	case KindDecimal:
		return ratOf(v.Str)
	case KindQuantity:
		return ratOf(v.Amount.Value)
	}
	return nil, false
}

// Float returns a numeric value as a float64 (for scores), and false otherwise.
func (v Value) Float() (float64, bool) {
	r, ok := v.rat()
	if !ok {
		return 0, false
	}
	f, _ := r.Float64()
	return f, true
}

// WellFormed reports a reason when the value is malformed for its kind: an
// unparseable decimal, a date that does not exist, a relative URI, an empty text.
// The reason never repeats the value (answers are personal data).
func (v Value) WellFormed() error {
	switch v.Kind {
	case KindDecimal:
		if !decimalRE.MatchString(v.Str) {
			return fmt.Errorf("not a plain decimal number")
		}
	case KindDate:
		if _, err := time.Parse(time.DateOnly, v.Str); err != nil {
			return fmt.Errorf("not an existing calendar date YYYY-MM-DD")
		}
	case KindTime:
		if !timeRE.MatchString(v.Str) {
			return fmt.Errorf("not a time of day hh:mm:ss")
		}
	case KindString:
		if v.Str == "" {
			return fmt.Errorf("empty text")
		}
	case KindURI:
		if u, err := url.Parse(v.Str); err != nil || !u.IsAbs() {
			return fmt.Errorf("not an absolute URI")
		}
	case KindCoding:
		if v.Coding.Code == "" {
			return fmt.Errorf("a coding without a code")
		}
	case KindQuantity:
		if !decimalRE.MatchString(v.Amount.Value) {
			return fmt.Errorf("quantity amount is not a plain decimal number")
		}
	case KindDateTime:
		if v.Instant.IsZero() {
			return fmt.Errorf("no instant")
		}
	case KindBoolean, KindInteger:
	default:
		return fmt.Errorf("no value")
	}
	return nil
}

// Compare orders v and w: -1, 0 or +1, and false when they are not comparable
// (different kinds, or kinds without order). Integers and decimals compare with each
// other exactly; quantities compare when their unit codes are equal.
func (v Value) Compare(w Value) (int, bool) {
	if v.numeric() && w.numeric() || v.Kind == KindQuantity && w.Kind == KindQuantity && v.Amount.System == w.Amount.System && v.Amount.Code == w.Amount.Code {
		a, ok1 := v.rat()
		b, ok2 := w.rat()
		if !ok1 || !ok2 {
			return 0, false
		}
		return a.Cmp(b), true
	}
	if v.Kind != w.Kind {
		return 0, false
	}
	switch v.Kind {
	case KindDate, KindTime: // fixed-width ISO forms order as strings
		return cmpStr(v.Str, w.Str), true
	case KindDateTime:
		return v.Instant.Compare(w.Instant), true
	}
	return 0, false
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Equal reports whether v and w are the same answer. Codings are equal when
// system and code are (the display is informational, as in FHIR).
func (v Value) Equal(w Value) bool {
	if c, ok := v.Compare(w); ok {
		return c == 0
	}
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindBoolean:
		return v.Bool == w.Bool
	case KindString, KindURI:
		return v.Str == w.Str
	case KindCoding:
		return v.Coding.System == w.Coding.System && v.Coding.Code == w.Coding.Code
	}
	return false
}

// Fits reports whether a value of this kind answers an item of type t (choice
// values are checked against the options separately).
func (k Kind) Fits(t Type) bool {
	switch t {
	case Boolean:
		return k == KindBoolean
	case Decimal:
		return k == KindDecimal || k == KindInteger
	case Integer:
		return k == KindInteger
	case Date:
		return k == KindDate
	case DateTime:
		return k == KindDateTime
	case Time:
		return k == KindTime
	case String, Text:
		return k == KindString
	case URL:
		return k == KindURI
	case Choice:
		return k == KindCoding || k == KindInteger || k == KindString
	case OpenChoice:
		return k == KindCoding || k == KindInteger || k == KindString
	case Quantity:
		return k == KindQuantity
	}
	return false
}
