package fhir_test

import (
	"errors"
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/fhir"
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
