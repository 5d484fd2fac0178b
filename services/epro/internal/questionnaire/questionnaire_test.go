package questionnaire

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

func score(f float64) *float64 { return &f }

func en(s string) Localized { return Localized{"en": s} }

var (
	yes = Code(Coding{System: "http://loinc.org", Code: "LA33-6", Display: "Yes"})
	no  = Code(Coding{System: "http://loinc.org", Code: "LA32-8", Display: "No"})
)

// sample is a small definition with every feature the checks look at: a scored
// choice pair, a conditional follow-up, a group, bounds, free text and a date.
func sample() *Definition {
	return &Definition{
		URL: "https://trialhub.example/fhir/Questionnaire/sample", Version: "1.0.0", Name: "SAMPLE", Language: "en",
		Items: []Item{
			{LinkID: "intro", Type: Display, Text: en("Please answer.")},
			{LinkID: "a", Type: Choice, Required: true, Text: en("A?"), Options: []Option{{yes, score(1)}, {no, score(0)}}},
			{LinkID: "b", Type: Choice, Text: en("B?"), Options: []Option{{Int(0), score(0)}, {Int(1), score(2)}, {Str("Prefer not to say"), nil}}},
			{LinkID: "a.why", Type: Text, Required: true, Text: en("Why?"), MaxLength: 10,
				EnableWhen: []Condition{{Question: "a", Op: Equal, Answer: yes}}},
			{LinkID: "g", Type: Group, Items: []Item{
				{LinkID: "age", Type: Integer, Text: en("Age"), Age: true, Min: ptr(Int(18)), Max: ptr(Int(120))},
				{LinkID: "temp", Type: Decimal, Text: en("Temperature"), Min: ptr(Dec("30.0")), Max: ptr(Dec("45"))},
				{LinkID: "when", Type: Date, Text: en("Since when?"), Max: ptr(DateOf("2030-12-31"))},
				{LinkID: "sx", Type: Choice, Repeats: true, Text: en("Symptoms"), Options: []Option{{Str("cough"), nil}, {Str("fever"), nil}}},
				{LinkID: "hi", Type: Boolean, Text: en("Fever high?"), Behavior: Any, EnableWhen: []Condition{
					{Question: "temp", Op: GreaterOrEqual, Answer: Dec("38")},
					{Question: "sx", Op: Equal, Answer: Str("fever")},
				}},
			}},
		},
		Rules:  []scoring.Rule{{Name: "total", LinkIDs: []string{"a", "b"}, Bands: []scoring.Band{{Min: 0, Max: 1, Label: "Low"}, {Min: 2, Max: 3, Label: "High"}}}},
		Alerts: []scoring.Alert{{Name: "b_positive", LinkID: "b", Op: scoring.OpGreater, Threshold: 0, Priority: scoring.PriorityUrgent}},
	}
}

func ptr[T any](v T) *T { return &v }

func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var inv *Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("error %v is not *Invalid", err)
	}
	var out []string
	for _, p := range inv.Problems {
		out = append(out, p.Path+" "+p.LinkID+" "+p.Rule)
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(d *Definition)
		want []string
	}{
		{"sample is valid", func(*Definition) {}, nil},
		{"url", func(d *Definition) { d.URL = "phq-9" }, []string{"url  definition.url"}},
		{"version", func(d *Definition) { d.Version = ".1" }, []string{"version  definition.version"}},
		{"language", func(d *Definition) { d.Language = "" }, []string{"language  definition.language",
			// without a language no text is in it
			"items[0].text intro item.text_required", "items[1].text a item.text_required", "items[2].text b item.text_required",
			"items[3].text a.why item.text_required", "items[4].items[0].text age item.text_required", "items[4].items[1].text temp item.text_required",
			"items[4].items[2].text when item.text_required", "items[4].items[3].text sx item.text_required", "items[4].items[4].text hi item.text_required"}},
		{"no items", func(d *Definition) { d.Items, d.Rules, d.Alerts = nil, nil, nil }, []string{"items  definition.items"}},
		{"duplicate link id in a group", func(d *Definition) { d.Items[4].Items[1].LinkID = "a" }, []string{
			"items[4].items[1].link_id a item.link_id_unique", "items[4].items[4].enable_when[0].question hi enable_when.earlier_item"}},
		{"bad link id", func(d *Definition) { d.Items[0].LinkID = "a b" }, []string{"items[0].link_id a b item.link_id"}},
		{"no type", func(d *Definition) { d.Items[0].Type = 0 }, []string{"items[0].type intro item.type"}},
		{"no text", func(d *Definition) { d.Items[1].Text = Localized{"es": "¿A?"} }, []string{"items[1].text a item.text_required"}},
		{"empty group", func(d *Definition) { d.Items[4].Items = nil; d.Alerts = nil }, []string{"items[4].items g item.group_has_items"}},
		{"repeating group", func(d *Definition) { d.Items[4].Repeats = true }, []string{"items[4].repeats g item.group_no_repeats"}},
		{"required display", func(d *Definition) { d.Items[0].Required = true }, []string{"items[0] intro item.display_not_answerable"}},
		{"options on integer", func(d *Definition) { d.Items[4].Items[0].Options = []Option{{Int(1), nil}} }, []string{"items[4].items[0].options age item.options_only_for_choice"}},
		{"choice without options", func(d *Definition) { d.Items[4].Items[3].Options = nil }, []string{"items[4].items[3].options sx item.choice_has_options", "items[4].items[4].enable_when[1].answer hi enable_when.answer_option"}},
		{"option kind", func(d *Definition) { d.Items[2].Options[0].Value = Bool(true) }, []string{"items[2].options[0].value b option.kind"}},
		{"duplicate option", func(d *Definition) { d.Items[1].Options[1].Value = yes }, []string{"items[1].options[1].value a option.unique"}},
		{"duplicate coding, other display", func(d *Definition) { c := yes; c.Coding.Display = "Oui"; d.Items[1].Options[1].Value = c }, []string{"items[1].options[1].value a option.unique"}},
		{"max length on integer", func(d *Definition) { d.Items[4].Items[0].MaxLength = 3 }, []string{"items[4].items[0].max_length age item.max_length"}},
		{"bound on text", func(d *Definition) { d.Items[3].Min = ptr(Int(1)) }, []string{"items[3].min a.why item.bounds_type"}},
		{"bound of other type", func(d *Definition) { d.Items[4].Items[0].Max = ptr(Dec("1.5")) }, []string{"items[4].items[0].max age item.bounds_type"}},
		{"min > max", func(d *Definition) { d.Items[4].Items[1].Min = ptr(Dec("45.5")) }, []string{"items[4].items[1] temp item.min_lte_max"}},
		{"min = max", func(d *Definition) { d.Items[4].Items[1].Min = ptr(Dec("45.0")) }, nil},
		{"date min > max", func(d *Definition) { d.Items[4].Items[2].Min = ptr(DateOf("2031-01-01")) }, []string{"items[4].items[2] when item.min_lte_max"}},
		{"behavior missing", func(d *Definition) { d.Items[4].Items[4].Behavior = 0 }, []string{"items[4].items[4].enable_behavior hi item.enable_behavior_required"}},
		{"condition on self", func(d *Definition) { d.Items[3].EnableWhen[0].Question = "a.why" }, []string{"items[3].enable_when[0].question a.why enable_when.not_self"}},
		{"condition on later item", func(d *Definition) { d.Items[3].EnableWhen[0].Question = "age" }, []string{"items[3].enable_when[0].question a.why enable_when.earlier_item"}},
		{"condition on unknown item", func(d *Definition) { d.Items[3].EnableWhen[0].Question = "zz" }, []string{"items[3].enable_when[0].question a.why enable_when.earlier_item"}},
		{"condition on display", func(d *Definition) { d.Items[3].EnableWhen[0].Question = "intro" }, []string{"items[3].enable_when[0].question a.why enable_when.answerable"}},
		{"condition without operator", func(d *Definition) { d.Items[3].EnableWhen[0].Op = 0 }, []string{"items[3].enable_when[0].operator a.why enable_when.operator"}},
		{"exists needs boolean", func(d *Definition) { d.Items[3].EnableWhen[0].Op = Exists }, []string{"items[3].enable_when[0].answer a.why enable_when.exists_takes_boolean"}},
		{"exists with boolean", func(d *Definition) {
			d.Items[3].EnableWhen[0] = Condition{Question: "a", Op: Exists, Answer: Bool(true)}
		}, nil},
		{"answer of other type", func(d *Definition) { d.Items[4].Items[4].EnableWhen[0].Answer = Str("38") }, []string{"items[4].items[4].enable_when[0].answer hi enable_when.answer_type"}},
		{"answer not an option", func(d *Definition) { d.Items[3].EnableWhen[0].Answer = Code(Coding{Code: "maybe"}) }, []string{"items[3].enable_when[0].answer a.why enable_when.answer_option"}},
		{"ordered on choice", func(d *Definition) { d.Items[3].EnableWhen[0].Op = Greater }, []string{"items[3].enable_when[0].operator a.why enable_when.ordered"}},
		{"too deep", func(d *Definition) {
			leaf := Item{LinkID: "deep", Type: Boolean, Text: en("Deep?")}
			for i := range 5 {
				leaf = Item{LinkID: "g" + string(rune('1'+i)), Type: Group, Items: []Item{leaf}}
			}
			d.Items = append(d.Items, leaf)
		}, []string{"items[5].items[0].items[0].items[0].items[0].items[0] deep item.depth"}},
		{"rule on unknown item", func(d *Definition) { d.Rules[0].LinkIDs = []string{"a", "zz"} }, []string{"rules[0].link_ids[1] zz rule.unknown_item"}},
		{"rule on text item", func(d *Definition) { d.Rules[0].LinkIDs = []string{"a", "a.why"} }, []string{"rules[0].link_ids[1] a.why rule.scored_item"}},
		{"rule on repeating choice", func(d *Definition) { d.Rules[0].LinkIDs = []string{"sx"} }, []string{"rules[0].link_ids[0] sx rule.scored_item"}},
		{"rule name", func(d *Definition) { d.Rules[0].Name = "Total" }, []string{"rules[0].name  rule.name"}},
		{"rule twice", func(d *Definition) { d.Rules = append(d.Rules, d.Rules[0]) }, []string{"rules[1].name  rule.name_unique"}},
		{"bands miss the top", func(d *Definition) { d.Rules[0].Bands[1].Max = 2 }, []string{"rules[0].bands[1].max  bands.cover_max"}},
		{"bands over unbounded item", func(d *Definition) { d.Items[4].Items[1].Max = nil; d.Rules[0].LinkIDs = []string{"a", "temp"} }, []string{"rules[0].bands  rule.bounded_total"}},
		{"bands over decimals", func(d *Definition) { d.Rules[0].LinkIDs = []string{"a", "temp"} }, []string{"rules[0].bands  bands.integral_total"}},
		{"bands over integers", func(d *Definition) {
			d.Rules[0].LinkIDs = []string{"a", "age"}
			d.Rules[0].Bands = []scoring.Band{{Min: 18, Max: 64, Label: "Adult"}, {Min: 65, Max: 121, Label: "Older"}}
		}, nil},
		{"alert on unknown item", func(d *Definition) { d.Alerts[0].LinkID = "zz" }, []string{"alerts[0].link_id zz alert.unknown_item"}},
		{"alert on unscored item", func(d *Definition) { d.Alerts[0].LinkID = "when" }, []string{"alerts[0].link_id when alert.scored_item"}},
		{"alert on unknown total", func(d *Definition) { d.Alerts[0].LinkID, d.Alerts[0].Total = "", "sum" }, []string{"alerts[0].total  alert.unknown_total"}},
		{"alert twice", func(d *Definition) { d.Alerts = append(d.Alerts, d.Alerts[0]) }, []string{"alerts[1].name  alert.name_unique"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sample()
			tt.mod(d)
			if got := problems(t, d.Validate()); !slices.Equal(got, tt.want) {
				t.Fatalf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	base := func() []Answer {
		return []Answer{{"a", []Value{no}}, {"b", []Value{Int(1)}}}
	}
	with := func(extra ...Answer) []Answer { return append(base(), extra...) }
	tests := []struct {
		name    string
		answers []Answer
		want    []string
	}{
		{"minimal", base(), nil},
		{"everything", []Answer{
			{"a", []Value{yes}}, {"a.why", []Value{Str("tired")}}, {"b", []Value{Str("Prefer not to say")}},
			{"age", []Value{Int(120)}}, {"temp", []Value{Dec("38.5")}}, {"when", []Value{DateOf("2030-12-31")}},
			{"sx", []Value{Str("cough"), Str("fever")}}, {"hi", []Value{Bool(false)}},
		}, nil},
		{"required missing", []Answer{{"b", []Value{Int(0)}}}, []string{"answers a answer.required"}},
		{"required follow-up when enabled", []Answer{{"a", []Value{yes}}}, []string{"answers a.why answer.required"}},
		{"follow-up answered when disabled", with(Answer{"a.why", []Value{Str("x")}}), []string{"answers[2] a.why answer.disabled"}},
		{"any: second condition enables", with(Answer{"sx", []Value{Str("fever")}}, Answer{"hi", []Value{Bool(true)}}), nil},
		{"any: no condition holds", with(Answer{"temp", []Value{Dec("37.9")}}, Answer{"hi", []Value{Bool(true)}}), []string{"answers[3] hi answer.disabled"}},
		{"any: decimal edge enables", with(Answer{"temp", []Value{Dec("38.0")}}, Answer{"hi", []Value{Bool(true)}}), nil},
		{"unknown item", with(Answer{"zz", []Value{Int(1)}}), []string{"answers[2].link_id zz answer.unknown_item"}},
		{"display answered", with(Answer{"intro", []Value{Str("x")}}), []string{"answers[2].link_id intro answer.not_answerable"}},
		{"group answered", with(Answer{"g", []Value{Str("x")}}), []string{"answers[2].link_id g answer.not_answerable"}},
		{"answered twice", with(Answer{"b", []Value{Int(0)}}), []string{"answers[2].link_id b answer.duplicate_item"}},
		{"no values", with(Answer{"age", nil}), []string{"answers[2].values age answer.empty"}},
		{"two values, no repeats", with(Answer{"age", []Value{Int(20), Int(21)}}), []string{"answers[2].values age answer.repeats"}},
		{"same value twice", with(Answer{"sx", []Value{Str("cough"), Str("cough")}}), []string{"answers[2].values[1] sx answer.duplicate_value"}},
		{"wrong type", with(Answer{"age", []Value{Str("20")}}), []string{"answers[2].values[0] age answer.type"}},
		{"integer for decimal", with(Answer{"temp", []Value{Int(37)}}), nil},
		{"bad decimal", with(Answer{"temp", []Value{Dec("3.7e1")}}), []string{"answers[2].values[0] temp answer.value"}},
		{"no such date", with(Answer{"when", []Value{DateOf("2026-02-30")}}), []string{"answers[2].values[0] when answer.value"}},
		{"not an option", with(Answer{"sx", []Value{Str("rash")}}), []string{"answers[2].values[0] sx answer.option"}},
		{"not an option coding", []Answer{{"a", []Value{Code(Coding{System: "http://loinc.org", Code: "LA00"})}}}, []string{"answers[0].values[0] a answer.option"}},
		{"below min", with(Answer{"age", []Value{Int(17)}}), []string{"answers[2].values[0] age answer.min"}},
		{"at min", with(Answer{"age", []Value{Int(18)}}), nil},
		{"above max", with(Answer{"age", []Value{Int(121)}}), []string{"answers[2].values[0] age answer.max"}},
		{"decimal below min", with(Answer{"temp", []Value{Dec("29.99")}}), []string{"answers[2].values[0] temp answer.min"}},
		{"decimal at max", with(Answer{"temp", []Value{Dec("45.000")}}), nil},
		{"date above max", with(Answer{"when", []Value{DateOf("2031-01-01")}}), []string{"answers[2].values[0] when answer.max"}},
		{"too long", []Answer{{"a", []Value{yes}}, {"a.why", []Value{Str("ñññññññññññ")}}}, []string{"answers[1].values[0] a.why answer.max_length"}},
		{"at length", []Answer{{"a", []Value{yes}}, {"a.why", []Value{Str("ññññññññññ")}}}, nil},
		{"many problems at once", []Answer{{"b", []Value{Int(7)}}, {"age", []Value{Int(1)}}, {"hi", []Value{Bool(true)}}},
			[]string{"answers a answer.required", "answers[0].values[0] b answer.option", "answers[1].values[0] age answer.min", "answers[2] hi answer.disabled"}},
	}
	d := sample()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := problems(t, d.Check(tt.answers)); !slices.Equal(got, tt.want) {
				t.Fatalf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheckMessagesCarryNoAnswer(t *testing.T) {
	d := sample()
	secret := "call me on 555-0100"
	err := d.Check([]Answer{{"a", []Value{yes}}, {"a.why", []Value{Str(secret)}}, {"temp", []Value{Dec("99.123")}}})
	if err == nil {
		t.Fatal("want problems")
	}
	for _, s := range []string{secret, "99.123", "555"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error message repeats an answer: %v", err)
		}
	}
}

func TestConditionOperators(t *testing.T) {
	tests := []struct {
		op     Operator
		answer Value
		given  []Value
		want   bool
	}{
		{Exists, Bool(true), []Value{Int(1)}, true}, {Exists, Bool(true), nil, false},
		{Exists, Bool(false), nil, true}, {Exists, Bool(false), []Value{Int(1)}, false},
		{Equal, Int(2), []Value{Int(1), Int(2)}, true}, {Equal, Int(2), []Value{Int(1)}, false}, {Equal, Int(2), nil, false},
		{NotEqual, Int(2), []Value{Int(1)}, true}, {NotEqual, Int(2), []Value{Int(1), Int(2)}, false}, {NotEqual, Int(2), nil, true},
		{Greater, Int(2), []Value{Int(3)}, true}, {Greater, Int(2), []Value{Int(2)}, false}, {Greater, Int(2), nil, false},
		{Less, Int(2), []Value{Int(1)}, true}, {Less, Int(2), []Value{Int(2)}, false},
		{GreaterOrEqual, Dec("2.0"), []Value{Int(2)}, true}, {GreaterOrEqual, Dec("2.01"), []Value{Int(2)}, false},
		{LessOrEqual, DateOf("2026-01-02"), []Value{DateOf("2026-01-02")}, true}, {LessOrEqual, DateOf("2026-01-02"), []Value{DateOf("2026-01-03")}, false},
		{Greater, Instant(time.Unix(10, 0)), []Value{Instant(time.Unix(11, 0))}, true},
		{Greater, TimeOf("08:00:00"), []Value{TimeOf("07:59:59")}, false},
		{Equal, Code(Coding{System: "s", Code: "c", Display: "x"}), []Value{Code(Coding{System: "s", Code: "c", Display: "y"})}, true},
		{Equal, Str("a"), []Value{Int(1)}, false}, // different kinds never equal
		{Greater, Quant(Amount{Value: "70", Code: "kg"}), []Value{Quant(Amount{Value: "72.5", Code: "kg"})}, true},
		{Greater, Quant(Amount{Value: "70", Code: "kg"}), []Value{Quant(Amount{Value: "172", Code: "[lb_av]"})}, false}, // other unit: not comparable
	}
	for _, tt := range tests {
		c := Condition{Question: "q", Op: tt.op, Answer: tt.answer}
		if got := c.holds(tt.given); got != tt.want {
			t.Errorf("%v %v on %v = %v, want %v", tt.op, tt.answer, tt.given, got, tt.want)
		}
	}
}

func TestScore(t *testing.T) {
	d := sample()
	tests := []struct {
		name    string
		answers []Answer
		known   bool
		total   float64
		band    string
		alerts  int
	}{
		{"low", []Answer{{"a", []Value{no}}, {"b", []Value{Int(0)}}}, true, 0, "Low", 0},
		{"band edge", []Answer{{"a", []Value{yes}}, {"a.why", []Value{Str("x")}}, {"b", []Value{Int(0)}}}, true, 1, "Low", 0},
		{"high", []Answer{{"a", []Value{no}}, {"b", []Value{Int(1)}}}, true, 2, "High", 1},
		{"unscored option", []Answer{{"a", []Value{no}}, {"b", []Value{Str("Prefer not to say")}}}, false, 0, "", 0},
		{"unanswered", []Answer{{"a", []Value{no}}}, false, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := d.Score(tt.answers)
			got, _ := res.Total("total")
			if got.Known != tt.known || got.Value != tt.total || (got.Band == nil) != (tt.band == "") || got.Band != nil && got.Band.Label != tt.band {
				t.Fatalf("total = %+v (band %v), want known=%v %g %q", got, got.Band, tt.known, tt.total, tt.band)
			}
			if len(res.Fired) != tt.alerts {
				t.Fatalf("fired = %v, want %d", res.Fired, tt.alerts)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, ty := range []Type{Group, Display, Boolean, Decimal, Integer, Date, DateTime, Time, String, Text, URL, Choice, OpenChoice, Quantity} {
		if got, ok := ParseType(ty.String()); !ok || got != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty.String(), got, ok)
		}
	}
	for _, bad := range []string{"unset", "attachment", "reference", "question", ""} {
		if _, ok := ParseType(bad); ok {
			t.Errorf("ParseType(%q) accepted", bad)
		}
	}
	for _, op := range []Operator{Exists, Equal, NotEqual, Greater, Less, GreaterOrEqual, LessOrEqual} {
		if got, ok := ParseOperator(op.String()); !ok || got != op {
			t.Errorf("ParseOperator(%q) = %v, %v", op.String(), got, ok)
		}
	}
}

func TestDigest(t *testing.T) {
	a, err := sample().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := sample().Digest(); a != b || len(a) != 64 {
		t.Fatalf("equal content, digests %s and %s", a, b)
	}
	changes := map[string]func(d *Definition){
		"text":      func(d *Definition) { d.Items[1].Text["en"] = "A!" },
		"score":     func(d *Definition) { *d.Items[1].Options[0].Score = 2 },
		"band":      func(d *Definition) { d.Rules[0].Bands[0].Label = "Lower" },
		"alert":     func(d *Definition) { d.Alerts[0].Threshold = 1 },
		"condition": func(d *Definition) { d.Items[3].EnableWhen[0].Op = NotEqual },
		"translation": func(d *Definition) {
			d.Items[1].Text["es"] = "¿A?"
		},
	}
	for name, change := range changes {
		d := sample()
		change(d)
		if b, _ := d.Digest(); b == a {
			t.Errorf("%s changed, digest did not", name)
		}
	}
	d := sample()
	nan := math.NaN()
	d.Items[1].Options[0].Score = &nan
	if _, err := d.Digest(); err == nil {
		t.Error("a NaN score digested")
	}
}
