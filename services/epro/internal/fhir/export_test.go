package fhir

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/deid"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

func TestExportPHQ9(t *testing.T) {
	phq := instruments.PHQ9()
	var answers []q.Answer
	for i := range 9 {
		id := string(rune('1' + i))
		answers = append(answers, q.Answer{LinkID: id, Values: []q.Value{phq.Item(id).Options[i%4].Value}})
	}
	p := deid.Policy{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}
	out, err := ExportResponse(phq, Response{
		ID: "0b0c8a4e-8f59-4a2e-9d59-7d1a3e6c2f10", Status: "completed", SubjectUUID: "5f1d7c3a-2b4e-4c6d-8e9f-0a1b2c3d4e5f",
		AuthoredStudyDay: p.Day(time.Date(2026, 3, 24, 9, 0, 0, 0, time.UTC)), Answers: p.Response(phq, answers, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "\n") {
		t.Fatal("an NDJSON line must not contain a newline")
	}
	var got struct {
		ResourceType  string `json:"resourceType"`
		Questionnaire string `json:"questionnaire"`
		Status        string `json:"status"`
		Authored      string `json:"authored"`
		Subject       struct {
			Identifier struct{ System, Value string } `json:"identifier"`
		} `json:"subject"`
		Extension []struct {
			URL          string `json:"url"`
			ValueInteger int    `json:"valueInteger"`
		} `json:"extension"`
		Item []struct {
			LinkID string `json:"linkId"`
			Answer []struct {
				ValueCoding struct{ System, Code, Display string } `json:"valueCoding"`
			} `json:"answer"`
		} `json:"item"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceType != "QuestionnaireResponse" || got.Questionnaire != "https://trialhub.example/fhir/Questionnaire/phq-9|1.0.0" || got.Status != "completed" || got.Authored != "" {
		t.Fatalf("header = %+v", got)
	}
	if got.Subject.Identifier.Value != "urn:uuid:5f1d7c3a-2b4e-4c6d-8e9f-0a1b2c3d4e5f" || got.Subject.Identifier.System != SubjectSystem {
		t.Fatalf("subject = %+v", got.Subject)
	}
	if len(got.Extension) != 1 || got.Extension[0].URL != StudyDayURL || got.Extension[0].ValueInteger != 15 {
		t.Fatalf("study day = %+v, want day 15", got.Extension)
	}
	if len(got.Item) != 9 || got.Item[8].LinkID != "9" || got.Item[8].Answer[0].ValueCoding.Code != "LA6568-5" || got.Item[8].Answer[0].ValueCoding.Display != "Not at all" {
		t.Fatalf("items = %+v", got.Item)
	}
}

func TestExportDeidentified(t *testing.T) {
	d := &q.Definition{URL: "https://example.org/q", Version: "2", Language: "en", Items: []q.Item{
		{LinkID: "g", Type: q.Group, Items: []q.Item{
			{LinkID: "onset", Type: q.Date, Text: q.Localized{"en": "Onset"}},
			{LinkID: "age", Type: q.Integer, Age: true, Text: q.Localized{"en": "Age"}},
			{LinkID: "unused", Type: q.Boolean, Text: q.Localized{"en": "Unused"}},
		}},
		{LinkID: "note", Type: q.Text, Text: q.Localized{"en": "Anything else?"}},
		{LinkID: "temp", Type: q.Decimal, Text: q.Localized{"en": "Temperature"}},
		{LinkID: "smoker", Type: q.Boolean, Text: q.Localized{"en": "Smoker?"}, Items: []q.Item{
			{LinkID: "per-day", Type: q.Integer, Text: q.Localized{"en": "Per day"}},
		}},
	}}
	secret := "Ann Example, born 1931-05-02, 555-0100"
	p := deid.Policy{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}
	answers := p.Response(d, []q.Answer{
		{LinkID: "onset", Values: []q.Value{q.DateOf("2026-03-01")}},
		{LinkID: "age", Values: []q.Value{q.Int(94)}},
		{LinkID: "note", Values: []q.Value{q.Str(secret)}},
		{LinkID: "temp", Values: []q.Value{q.Dec("37.50")}},
		{LinkID: "smoker", Values: []q.Value{q.Bool(true)}},
		{LinkID: "per-day", Values: []q.Value{q.Int(5)}},
	}, nil)
	out, err := ExportResponse(d, Response{ID: "r1", Status: "amended", SubjectUUID: "u1", AuthoredStudyDay: -2, Answers: answers})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, leak := range []string{"Ann", "1931", "555", "2026-03-01", "94", "authored"} {
		if strings.Contains(s, leak) {
			t.Errorf("export contains %q: %s", leak, s)
		}
	}
	for _, want := range []string{
		`"questionnaire":"https://example.org/q|2"`,
		`{"item":[{"answer":[{"extension":[{"url":"` + StudyDayURL + `","valueInteger":-9}]}],"linkId":"onset"},{"answer":[{"extension":[{"url":"` + AgeTopCodedURL + `","valueBoolean":true}],"valueInteger":90}],"linkId":"age"}],"linkId":"g"}`,
		`{"answer":[{"extension":[{"url":"` + DataAbsentReasonURL + `","valueCode":"masked"}]}],"linkId":"note"}`,
		`{"answer":[{"valueDecimal":37.50}],"linkId":"temp"}`,
		`{"answer":[{"item":[{"answer":[{"valueInteger":5}],"linkId":"per-day"}],"valueBoolean":true}],"linkId":"smoker"}`,
		`"extension":[{"url":"` + StudyDayURL + `","valueInteger":-2}]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("export lacks %s\nin %s", want, s)
		}
	}
	if strings.Contains(s, `"unused"`) {
		t.Errorf("an unanswered item was exported: %s", s)
	}
}

func TestExportRefuses(t *testing.T) {
	d := instruments.GAD7()
	tests := []struct {
		name string
		r    Response
		want string
	}{
		{"unknown status", Response{ID: "r", Status: "done"}, `status "done"`},
		{"answer to another questionnaire's item", Response{ID: "r", Status: "completed", Answers: []deid.Answer{{LinkID: "9"}}}, "item 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ExportResponse(d, tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
