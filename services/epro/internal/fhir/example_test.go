package fhir_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/trialhub/trialhub/services/epro/internal/deid"
	"github.com/trialhub/trialhub/services/epro/internal/fhir"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

func ExampleImport() {
	_, err := fhir.Import([]byte(`{
	  "resourceType": "Questionnaire", "url": "https://example.org/q", "version": "1",
	  "item": [
	    {"linkId": "photo", "type": "attachment", "text": "A photo"},
	    {"linkId": "mood", "type": "choice", "text": "Mood", "answerValueSet": "http://example.org/vs"}
	  ]
	}`))
	var u *fhir.Unsupported
	if errors.As(err, &u) {
		for _, p := range u.Parts {
			fmt.Println(p.Path, "-", p.Reason)
		}
	}
	// Output:
	// Questionnaire.item[0].type - item type "attachment" not supported
	// Questionnaire.item[1].answerValueSet - not supported
}

func ExampleExportResponse() {
	gad := instruments.GAD7()
	var answers []q.Answer
	for i := range 7 {
		id := fmt.Sprint(i + 1)
		answers = append(answers, q.Answer{LinkID: id, Values: []q.Value{gad.Item(id).Options[0].Value}})
	}
	p := deid.Policy{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)}
	line, err := fhir.ExportResponse(gad, fhir.Response{
		ID: "r-1", Status: "completed", SubjectUUID: "5f1d7c3a-2b4e-4c6d-8e9f-0a1b2c3d4e5f",
		AuthoredStudyDay: p.Day(time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC)),
		Answers:          p.Response(gad, answers[:1], nil),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(line))
	// Output:
	// {"extension":[{"url":"https://trialhub.example/fhir/StructureDefinition/study-day","valueInteger":3}],"id":"r-1","item":[{"answer":[{"valueCoding":{"code":"LA6568-5","display":"Not at all","system":"http://loinc.org"}}],"linkId":"1"}],"questionnaire":"https://trialhub.example/fhir/Questionnaire/gad-7|1.0.0","resourceType":"QuestionnaireResponse","status":"completed","subject":{"identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:5f1d7c3a-2b4e-4c6d-8e9f-0a1b2c3d4e5f"}}}
}
