package deid

import (
	"fmt"
	"strings"
	"testing"
	"time"

	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

func TestStudyDay(t *testing.T) {
	start := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		date string
		want int
	}{
		{"2026-03-10", 1}, {"2026-03-11", 2}, {"2026-03-09", -1}, {"2026-03-08", -2},
		{"2026-04-09", 31}, {"2025-03-10", -365}, {"2027-03-10", 366},
		{"2026-03-29", 20}, // across the EU daylight-saving change (29 March 2026)
	}
	for _, tt := range tests {
		d, _ := time.Parse(time.DateOnly, tt.date)
		if got := StudyDay(start, d); got != tt.want {
			t.Errorf("StudyDay(%s) = %d, want %d", tt.date, got, tt.want)
		}
		if got := StudyDay(start, d); got == 0 {
			t.Errorf("day 0 for %s", tt.date)
		}
	}
}

func TestDayInSiteZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	p := Policy{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, tokyo), Location: tokyo}
	tests := []struct {
		at   time.Time
		want int
	}{
		{time.Date(2026, 3, 9, 14, 59, 59, 0, time.UTC), -1}, // 23:59:59 on 9 March in Tokyo
		{time.Date(2026, 3, 9, 15, 0, 0, 0, time.UTC), 1},    // midnight 10 March in Tokyo
		{time.Date(2026, 3, 10, 14, 59, 59, 0, time.UTC), 1},
		{time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC), 2},
	}
	for _, tt := range tests {
		if got := p.Day(tt.at); got != tt.want {
			t.Errorf("Day(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	if got := (Policy{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}).Day(time.Date(2026, 3, 9, 23, 0, 0, 0, time.UTC)); got != -1 {
		t.Errorf("nil location is UTC: got day %d", got)
	}
}

func score(f float64) *float64 { return &f }

var (
	coded = q.Coding{System: "http://loinc.org", Code: "LA6569-3", Display: "Several days"}
	item  = map[string]*q.Item{
		"comment": {LinkID: "comment", Type: q.Text},
		"site":    {LinkID: "site", Type: q.URL},
		"freq":    {LinkID: "freq", Type: q.Choice, Options: []q.Option{{Value: q.Code(coded), Score: score(1)}, {Value: q.Str("Prefer not to say")}}},
		"other":   {LinkID: "other", Type: q.OpenChoice, Repeats: true, Options: []q.Option{{Value: q.Str("Headache")}}},
		"weight":  {LinkID: "weight", Type: q.Quantity, Unit: &q.Coding{System: "http://unitsofmeasure.org", Code: "kg", Display: "kilogram"}},
		"height":  {LinkID: "height", Type: q.Quantity},
		"age":     {LinkID: "age", Type: q.Integer, Age: true},
		"agedec":  {LinkID: "agedec", Type: q.Decimal, Age: true},
		"count":   {LinkID: "count", Type: q.Integer},
		"onset":   {LinkID: "onset", Type: q.Date},
		"taken":   {LinkID: "taken", Type: q.DateTime},
		"at":      {LinkID: "at", Type: q.Time},
		"ok":      {LinkID: "ok", Type: q.Boolean},
	}
)

func TestAnswer(t *testing.T) {
	start := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	secret := q.Str("I want to end it, call 555-0100")
	tests := []struct {
		name   string
		policy FreeText
		review Review
		in     q.Answer
		want   string // fmt of values, study days, withheld, capped
	}{
		{"text withheld by default", Withhold, Reviewed, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[] [] 2 false"},
		{"text reviewed-only, unreviewed", ReviewedOnly, Unreviewed, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[] [] 1 false"},
		{"text reviewed-only, reviewed", ReviewedOnly, Reviewed, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[string:I want to end it, call 555-0100] [] 0 false"},
		{"text all, unreviewed", All, Unreviewed, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[string:I want to end it, call 555-0100] [] 0 false"},
		{"text all, redacted", All, Redacted, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[] [] 3 false"},
		{"text reviewed-only, redacted", ReviewedOnly, Redacted, q.Answer{LinkID: "comment", Values: []q.Value{secret}}, "[] [] 3 false"},
		{"url withheld", Withhold, Unreviewed, q.Answer{LinkID: "site", Values: []q.Value{q.URI("https://example.org/me")}}, "[] [] 2 false"},
		{"url all", All, Unreviewed, q.Answer{LinkID: "site", Values: []q.Value{q.URI("https://example.org/me")}}, "[uri:https://example.org/me] [] 0 false"},
		{"open choice: option kept, typed text withheld", Withhold, Unreviewed, q.Answer{LinkID: "other", Values: []q.Value{q.Str("Headache"), q.Str("my neighbour Bob")}}, "[string:Headache] [] 2 false"},
		{"string option of a choice kept", Withhold, Unreviewed, q.Answer{LinkID: "freq", Values: []q.Value{q.Str("Prefer not to say")}}, "[string:Prefer not to say] [] 0 false"},
		{"string that is no option withheld, whatever the type", Withhold, Unreviewed, q.Answer{LinkID: "count", Values: []q.Value{q.Str("Ann")}}, "[] [] 2 false"},
		{"coding display from definition", Withhold, Unreviewed, q.Answer{LinkID: "freq", Values: []q.Value{q.Code(q.Coding{System: coded.System, Code: coded.Code, Display: "typed by Ann"})}}, "[coding:LA6569-3/Several days] [] 0 false"},
		{"unknown coding loses its display", Withhold, Unreviewed, q.Answer{LinkID: "freq", Values: []q.Value{q.Code(q.Coding{Code: "x", Display: "Ann"})}}, "[coding:x/] [] 0 false"},
		{"unit from definition", Withhold, Unreviewed, q.Answer{LinkID: "weight", Values: []q.Value{q.Quant(q.Amount{Value: "72.5", Unit: "kilos (Ann's scale)", Code: "kg"})}}, "[quantity:72.5 kilogram kg] [] 0 false"},
		{"unit code without definition unit", Withhold, Unreviewed, q.Answer{LinkID: "height", Values: []q.Value{q.Quant(q.Amount{Value: "180", Unit: "cm, measured by Bob", System: "http://unitsofmeasure.org", Code: "cm"})}}, "[quantity:180 cm cm] [] 0 false"},
		{"age 89 kept", Withhold, Unreviewed, q.Answer{LinkID: "age", Values: []q.Value{q.Int(89)}}, "[integer:89] [] 0 false"},
		{"age 90 capped", Withhold, Unreviewed, q.Answer{LinkID: "age", Values: []q.Value{q.Int(90)}}, "[integer:90] [] 0 true"},
		{"age 104 capped", Withhold, Unreviewed, q.Answer{LinkID: "age", Values: []q.Value{q.Int(104)}}, "[integer:90] [] 0 true"},
		{"age 89.9 kept", Withhold, Unreviewed, q.Answer{LinkID: "agedec", Values: []q.Value{q.Dec("89.9")}}, "[decimal:89.9] [] 0 false"},
		{"age 90.0 capped", Withhold, Unreviewed, q.Answer{LinkID: "agedec", Values: []q.Value{q.Dec("90.0")}}, "[integer:90] [] 0 true"},
		{"non-age integer kept", Withhold, Unreviewed, q.Answer{LinkID: "count", Values: []q.Value{q.Int(104)}}, "[integer:104] [] 0 false"},
		{"date to study day", All, Reviewed, q.Answer{LinkID: "onset", Values: []q.Value{q.DateOf("2026-03-09")}}, "[] [-1] 4 false"},
		{"date-time to study day", All, Reviewed, q.Answer{LinkID: "taken", Values: []q.Value{q.Instant(time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC))}}, "[] [3] 4 false"},
		{"time of day kept", Withhold, Unreviewed, q.Answer{LinkID: "at", Values: []q.Value{q.TimeOf("08:30:00")}}, "[time:08:30:00] [] 0 false"},
		{"boolean kept", Withhold, Unreviewed, q.Answer{LinkID: "ok", Values: []q.Value{q.Bool(true)}}, "[boolean:true] [] 0 false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{FreeText: tt.policy, Start: start}
			got := p.Answer(item[tt.in.LinkID], tt.in, tt.review)
			if s := describe(got); s != tt.want {
				t.Fatalf("got  %s\nwant %s", s, tt.want)
			}
		})
	}
}

func describe(a Answer) string {
	var vs []string
	for _, v := range a.Values {
		var s string
		switch v.Kind {
		case q.KindBoolean:
			s = fmt.Sprint(v.Bool)
		case q.KindInteger:
			s = fmt.Sprint(v.Int)
		case q.KindCoding:
			s = v.Coding.Code + "/" + v.Coding.Display
		case q.KindQuantity:
			s = v.Amount.Value + " " + v.Amount.Unit + " " + v.Amount.Code
		default:
			s = v.Str
		}
		vs = append(vs, v.Kind.String()+":"+s)
	}
	return fmt.Sprintf("[%s] %v %d %v", strings.Join(vs, " "), fmtDays(a.StudyDays), a.Withheld, a.AgeCapped)
}

func fmtDays(d []int) string {
	if d == nil {
		return "[]"
	}
	return fmt.Sprint(d)
}

func TestResponseScoresAndDropsNothingKnown(t *testing.T) {
	d := &q.Definition{Items: []q.Item{*item["freq"], *item["comment"]}}
	got := Policy{}.Response(d, []q.Answer{
		{LinkID: "freq", Values: []q.Value{q.Code(coded)}},
		{LinkID: "comment", Values: []q.Value{q.Str("x")}},
	}, map[string]Review{"comment": Reviewed})
	if len(got) != 2 || got[0].Score == nil || *got[0].Score != 1 || got[1].Withheld != FreeTextNotRequested {
		t.Fatalf("got %+v", got)
	}
}

func TestCSVCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"},
		{"+1+2", "'+1+2"},
		{"-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"-3", "-3"},     // a negative study day stays numeric
		{"-0.5", "-0.5"}, // a negative decimal too
		{"+3", "'+3"},    // not how numbers are written by us: escaped
		{"a=b", "a=b"},   // only the first character matters
		{" =1", " =1"},
		{"-", "'-"},
	}
	for _, tt := range tests {
		if got := CSVCell(tt.in); got != tt.want {
			t.Errorf("CSVCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	dangerous := []string{"=", "+", "-", "@", "\t", "\r"}
	for _, p := range dangerous {
		if got := CSVCell(p + "x"); got != "'"+p+"x" {
			t.Errorf("prefix %q not escaped: %q", p, got)
		}
	}
}

func TestCell(t *testing.T) {
	tests := []struct {
		name string
		a    Answer
		want string
	}{
		{"boolean", Answer{Values: []q.Value{q.Bool(false)}}, "false"},
		{"integer", Answer{Values: []q.Value{q.Int(-3)}}, "-3"},
		{"decimal digits kept", Answer{Values: []q.Value{q.Dec("37.50")}}, "37.50"},
		{"age 90+", Answer{Values: []q.Value{q.Int(AgeCap)}, AgeCapped: true}, "90+"},
		{"coding as code", Answer{Values: []q.Value{q.Code(coded)}}, "LA6569-3"},
		{"quantity amount", Answer{Values: []q.Value{q.Quant(q.Amount{Value: "72.5", Code: "kg"})}}, "72.5"},
		{"repeats", Answer{Values: []q.Value{q.Str("cough"), q.Str("fever")}}, "cough|fever"},
		{"study days", Answer{StudyDays: []int{1, 3}}, "1|3"},
		{"joined negative days are no plain number: escaped", Answer{StudyDays: []int{-1, 3}}, "'-1|3"},
		{"negative study day stays numeric", Answer{StudyDays: []int{-12}}, "-12"},
		{"withheld", Answer{Withheld: FreeTextUnreviewed}, ""},
		{"formula in reviewed text", Answer{Values: []q.Value{q.Str("=HYPERLINK(\"x\")")}}, "'=HYPERLINK(\"x\")"},
		{"formula in a later value", Answer{Values: []q.Value{q.Str("@x"), q.Str("=1")}}, "'@x|=1"},
		{"minus text", Answer{Values: []q.Value{q.Str("-rm")}}, "'-rm"},
	}
	for _, tt := range tests {
		if got := tt.a.Cell(); got != tt.want {
			t.Errorf("%s: Cell() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDatesUseSiteZoneStart(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// Enrolled at 21:00 on 9 March in New York, which is 10 March in UTC.
	p := Policy{Start: time.Date(2026, 3, 10, 1, 0, 0, 0, time.UTC), Location: ny}
	d, _ := time.Parse(time.DateOnly, "2026-03-09")
	if got := p.DateDay(d); got != 1 {
		t.Fatalf("the enrolment date in the site's zone is day %d, want 1", got)
	}
	a := p.Answer(item["onset"], q.Answer{LinkID: "onset", Values: []q.Value{q.DateOf("2026-03-10")}}, Unreviewed)
	if len(a.StudyDays) != 1 || a.StudyDays[0] != 2 {
		t.Fatalf("study days = %v, want [2]", a.StudyDays)
	}
}
