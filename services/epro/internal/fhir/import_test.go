package fhir

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

func readDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byLOINC maps the shipped PHQ-9's link ids to the imported document's, through
// the items' LOINC codes.
func byLOINC(shipped, imported *q.Definition) map[string]string {
	codes := map[string]string{}
	imported.Walk(func(_ string, it *q.Item) bool {
		if it.Code != nil {
			codes[it.Code.Code] = it.LinkID
		}
		return true
	})
	out := map[string]string{}
	shipped.Walk(func(_ string, it *q.Item) bool {
		if it.Code != nil {
			out[it.LinkID] = codes[it.Code.Code]
		}
		return true
	})
	return out
}

func TestImportPHQ9(t *testing.T) {
	d, err := Import(readDoc(t, "phq9.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Canonical() != "http://loinc.org/q/44249-1|2.68" || d.Code.Code != "44249-1" || d.Language != "en" {
		t.Fatalf("header = %s %v %s", d.Canonical(), d.Code, d.Language)
	}
	group := d.Item("/44249-1-group")
	if group == nil || group.Type != q.Group || len(group.Items) != 9 {
		t.Fatalf("group = %+v", group)
	}
	if !strings.HasPrefix(group.Text.In("es", "en"), "Durante las últimas 2 semanas") || group.Text.In("fr", "en") != instruments.PHQ9().Item("stem").Text["en"] {
		t.Fatalf("translations = %q", group.Text)
	}
	item9 := d.Item("/44260-8")
	if item9 == nil || !item9.Required || len(item9.Options) != 4 || *item9.Options[3].Score != 3 || item9.Options[3].Value.Coding.Code != "LA6571-9" {
		t.Fatalf("item 9 = %+v", item9)
	}
	diff := d.Item("/69722-7")
	if diff == nil || diff.Behavior != q.Any || len(diff.EnableWhen) != 9 || diff.EnableWhen[0].Op != q.NotEqual {
		t.Fatalf("difficulty item = %+v", diff)
	}

	// The texts are the shipped instrument's, item by item.
	shipped := instruments.PHQ9()
	ids := byLOINC(shipped, d)
	for s, i := range ids {
		if s == "9" || s == "1" {
			if got, want := d.Item(i).Text["en"], shipped.Item(s).Text["en"]; got != want {
				t.Errorf("item %s text %q, want %q", s, got, want)
			}
		}
	}

	// With the shipped rules moved onto the imported link ids, every answer pattern
	// scores as the shipped instrument does.
	rule := shipped.Rules[0]
	rule.LinkIDs = nil
	for _, id := range shipped.Rules[0].LinkIDs {
		rule.LinkIDs = append(rule.LinkIDs, ids[id])
	}
	alert := shipped.Alerts[0]
	alert.LinkID = ids["9"]
	d.Rules, d.Alerts = []scoring.Rule{rule}, []scoring.Alert{alert}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for pattern := range 4 * 9 * 4 {
		scores := make([]int, 9)
		for i := range scores { // a spread of every score on every item, and totals from 0 to 27
			scores[i] = (pattern/4 + i*pattern) % 4
			if pattern%4 == 0 {
				scores[i] = min(3, pattern/4%4)
			}
		}
		var sa, ia []q.Answer
		for i, s := range scores {
			id := fmt.Sprint(i + 1)
			sa = append(sa, q.Answer{LinkID: id, Values: []q.Value{shipped.Item(id).Options[s].Value}})
			ia = append(ia, q.Answer{LinkID: ids[id], Values: []q.Value{d.Item(ids[id]).Options[s].Value}})
		}
		if err := d.Check(ia); err != nil {
			t.Fatalf("%v: %v", scores, err)
		}
		want, got := shipped.Score(sa), d.Score(ia)
		wt, _ := want.Total("total")
		gt, _ := got.Total("total")
		if wt.Value != gt.Value || wt.Band.Label != gt.Band.Label || len(want.Fired) != len(got.Fired) {
			t.Fatalf("%v: imported %v %s %d alerts, shipped %v %s %d alerts", scores, gt.Value, gt.Band.Label, len(got.Fired), wt.Value, wt.Band.Label, len(want.Fired))
		}
	}

	// The difficulty item is enabled only when some problem was checked off.
	zeros := []q.Answer{}
	for i := range 9 {
		zeros = append(zeros, q.Answer{LinkID: ids[fmt.Sprint(i+1)], Values: []q.Value{q.Code(q.Coding{System: "http://loinc.org", Code: "LA6568-5"})}})
	}
	answered := append(slices.Clone(zeros), q.Answer{LinkID: "/69722-7", Values: []q.Value{q.Code(q.Coding{System: "http://loinc.org", Code: "LA6573-5"})}})
	if got := problemRules(t, d.Check(answered)); !slices.Equal(got, []string{"/69722-7 answer.disabled"}) {
		t.Fatalf("difficulty after all zeros: %q", got)
	}
	answered[0].Values = []q.Value{q.Code(q.Coding{System: "http://loinc.org", Code: "LA6569-3"})}
	if err := d.Check(answered); err != nil {
		t.Fatalf("difficulty after a problem: %v", err)
	}
}

func problemRules(t *testing.T, err error) []string {
	t.Helper()
	var inv *q.Invalid
	if err != nil && !errors.As(err, &inv) {
		t.Fatalf("error %v is not *questionnaire.Invalid", err)
	}
	var out []string
	if inv != nil {
		for _, p := range inv.Problems {
			out = append(out, p.LinkID+" "+p.Rule)
		}
	}
	return out
}

func unsupported(t *testing.T, err error) []string {
	t.Helper()
	var u *Unsupported
	if !errors.As(err, &u) {
		t.Fatalf("error %v is not *Unsupported", err)
	}
	var out []string
	for _, p := range u.Parts {
		out = append(out, p.Path)
	}
	return out
}

func TestImportUnsupportedDocument(t *testing.T) {
	_, err := Import(readDoc(t, "unsupported.json"))
	want := []string{
		"Questionnaire.item[0].type",
		"Questionnaire.item[1].answerValueSet",
		"Questionnaire.item[2].extension[0]",
		"Questionnaire.item[2].readOnly",
		"Questionnaire.item[3].initial",
		"Questionnaire.item[4].answerOption[0]",
		"Questionnaire.item[4].answerOption[0].valueReference",
		"Questionnaire.item[4].answerOption[1].initialSelected",
		"Questionnaire.item[5].type",
		"Questionnaire.item[5].enableWhen[0].answerReference",
		"Questionnaire.extension",
		"Questionnaire.implicitRules",
	}
	if got := unsupported(t, err); !slices.Equal(got, want) {
		t.Fatalf("unsupported parts:\n got %q\nwant %q", got, want)
	}
	for _, s := range []string{"sdc-questionnaire-calculatedExpression", `item type "attachment"`, `item type "reference"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
}

// doc wraps items in a minimal valid Questionnaire.
func doc(items string) []byte {
	return []byte(`{"resourceType":"Questionnaire","url":"https://example.org/q","version":"1","language":"en","item":[` + items + `]}`)
}

func TestImportParts(t *testing.T) {
	tests := []struct {
		name        string
		items       string
		unsupported []string
		invalid     []string
		check       func(t *testing.T, d *q.Definition)
	}{
		{"integer and string options with itemWeight", `{"linkId":"a","type":"choice","text":"A","answerOption":[
			{"valueInteger":1,"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/itemWeight","valueDecimal":0.5}]},
			{"valueString":"None"}]}`, nil, nil, func(t *testing.T, d *q.Definition) {
			o := d.Item("a").Options
			if o[0].Value.Int != 1 || *o[0].Score != 0.5 || o[1].Value.Str != "None" || o[1].Score != nil {
				t.Fatalf("options = %+v", o)
			}
		}},
		{"ordinalValue on the coding", `{"linkId":"a","type":"choice","text":"A","answerOption":[
			{"valueCoding":{"code":"x","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/ordinalValue","valueDecimal":2}]}}]}`, nil, nil,
			func(t *testing.T, d *q.Definition) {
				if s := d.Item("a").Options[0].Score; s == nil || *s != 2 {
					t.Fatalf("score = %v", s)
				}
			}},
		{"two scores on one option", `{"linkId":"a","type":"choice","text":"A","answerOption":[
			{"valueCoding":{"code":"x","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/ordinalValue","valueDecimal":2}]},
			 "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/itemWeight","valueDecimal":2}]}]}`,
			[]string{"Questionnaire.item[0].answerOption[0].extension[0]"}, nil, nil},
		{"decimal bounds, exact digits", `{"linkId":"t","type":"decimal","text":"T","extension":[
			{"url":"http://hl7.org/fhir/StructureDefinition/minValue","valueDecimal":35.00},
			{"url":"http://hl7.org/fhir/StructureDefinition/maxValue","valueDecimal":42.5}]}`, nil, nil,
			func(t *testing.T, d *q.Definition) {
				if it := d.Item("t"); it.Min.Str != "35.00" || it.Max.Str != "42.5" {
					t.Fatalf("bounds = %v %v", it.Min, it.Max)
				}
			}},
		{"date bound and unit", `{"linkId":"d","type":"date","text":"D","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/maxValue","valueDate":"2030-01-01"}]},
			{"linkId":"w","type":"quantity","text":"W","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/questionnaire-unit","valueCoding":{"system":"http://unitsofmeasure.org","code":"kg","display":"kilogram"}}]}`, nil, nil,
			func(t *testing.T, d *q.Definition) {
				if d.Item("d").Max.Str != "2030-01-01" || d.Item("w").Unit.Code != "kg" {
					t.Fatalf("items = %+v %+v", d.Item("d"), d.Item("w"))
				}
			}},
		{"age item", `{"linkId":"age","type":"integer","text":"Age","code":[{"system":"http://loinc.org","code":"30525-0"}]}`, nil, nil,
			func(t *testing.T, d *q.Definition) {
				if !d.Item("age").Age {
					t.Fatal("LOINC 30525-0 not marked as age")
				}
			}},
		{"enableWhen all, nested, repeats, maxLength", `{"linkId":"g","type":"group","item":[
			{"linkId":"a","type":"boolean","text":"A"},
			{"linkId":"b","type":"integer","text":"B"},
			{"linkId":"c","type":"string","text":"C","repeats":true,"maxLength":20,"enableBehavior":"all","enableWhen":[
				{"question":"a","operator":"=","answerBoolean":true},{"question":"b","operator":">=","answerInteger":3},
				{"question":"b","operator":"exists","answerBoolean":true}]}]}`, nil, nil,
			func(t *testing.T, d *q.Definition) {
				c := d.Item("c")
				if c.Behavior != q.All || len(c.EnableWhen) != 3 || c.EnableWhen[1].Op != q.GreaterOrEqual || c.EnableWhen[1].Answer.Int != 3 || !c.Repeats || c.MaxLength != 20 {
					t.Fatalf("item c = %+v", c)
				}
			}},
		{"unknown enableBehavior", `{"linkId":"a","type":"boolean","text":"A"},{"linkId":"b","type":"boolean","text":"B","enableBehavior":"some","enableWhen":[{"question":"a","operator":"exists","answerBoolean":true}]}`,
			[]string{"Questionnaire.item[1].enableBehavior"}, nil, nil},
		{"unknown operator", `{"linkId":"a","type":"boolean","text":"A"},{"linkId":"b","type":"boolean","text":"B","enableWhen":[{"question":"a","operator":"~","answerBoolean":true}]}`,
			[]string{"Questionnaire.item[1].enableWhen[0].operator"}, nil, nil},
		{"two answers in a condition", `{"linkId":"a","type":"boolean","text":"A"},{"linkId":"b","type":"boolean","text":"B","enableWhen":[{"question":"a","operator":"=","answerBoolean":true,"answerString":"x"}]}`,
			[]string{"Questionnaire.item[1].enableWhen[0]", "Questionnaire.item[1].enableWhen[0].answerBoolean", "Questionnaire.item[1].enableWhen[0].answerString"}, nil, nil},
		{"malformed fields", `{"linkId":7,"type":"boolean","text":"A","required":"yes"}`,
			[]string{"Questionnaire.item[0].linkId", "Questionnaire.item[0].required"}, nil, nil},
		{"other translation extension", `{"linkId":"a","type":"boolean","text":"A","_text":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/rendering-xhtml","valueString":"<b>A</b>"}]}}`,
			[]string{"Questionnaire.item[0]._text.extension[0]"}, nil, nil},
		{"translation without content", `{"linkId":"a","type":"boolean","text":"A","_text":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/translation","extension":[{"url":"lang","valueCode":"de"}]}]}}`,
			[]string{"Questionnaire.item[0]._text.extension[0]"}, nil, nil},
		{"second item code", `{"linkId":"a","type":"boolean","text":"A","code":[{"code":"1"},{"code":"2"}]}`,
			[]string{"Questionnaire.item[0].code[1]"}, nil, nil},
		{"partial dateTime", `{"linkId":"a","type":"dateTime","text":"A"},{"linkId":"b","type":"boolean","text":"B","enableWhen":[{"question":"a","operator":">","answerDateTime":"2026"}]}`,
			[]string{"Questionnaire.item[1].enableWhen[0].answerDateTime"}, nil, nil},
		{"maps but is invalid", `{"linkId":"b","type":"boolean","text":"B","enableWhen":[{"question":"a","operator":"exists","answerBoolean":true}]},{"linkId":"a","type":"boolean","text":"A"},{"linkId":"a","type":"integer","text":"A2"}`,
			nil, []string{"b enable_when.earlier_item", "a item.link_id_unique"}, nil},
		{"options on an integer", `{"linkId":"a","type":"integer","text":"A","answerOption":[{"valueInteger":1}]}`,
			nil, []string{"a item.options_only_for_choice"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Import(doc(tt.items))
			switch {
			case tt.unsupported != nil:
				if got := unsupported(t, err); !slices.Equal(got, tt.unsupported) {
					t.Fatalf("unsupported:\n got %q\nwant %q (%v)", got, tt.unsupported, err)
				}
			case tt.invalid != nil:
				if got := problemRules(t, err); !slices.Equal(got, tt.invalid) {
					t.Fatalf("invalid:\n got %q\nwant %q", got, tt.invalid)
				}
			case err != nil:
				t.Fatal(err)
			default:
				tt.check(t, d)
			}
		})
	}
}

func TestImportDocumentErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not JSON", `{`, "read questionnaire"},
		{"two values", `{} {}`, "more than one JSON value"},
		{"other resource", `{"resourceType":"Patient"}`, "Questionnaire.resourceType"},
		{"array", `[]`, "Questionnaire: expected an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Import([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
