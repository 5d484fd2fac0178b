package questionnaire_test

import (
	"errors"
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

func ExampleDefinition_Check() {
	q := questionnaire.Definition{
		URL: "https://trialhub.example/fhir/Questionnaire/smoking", Version: "1", Language: "en",
		Items: []questionnaire.Item{
			{LinkID: "smokes", Type: questionnaire.Boolean, Required: true, Text: questionnaire.Localized{"en": "Do you smoke?"}},
			{LinkID: "per-day", Type: questionnaire.Integer, Required: true, Text: questionnaire.Localized{"en": "Cigarettes per day"},
				Min:        &[]questionnaire.Value{questionnaire.Int(1)}[0],
				EnableWhen: []questionnaire.Condition{{Question: "smokes", Op: questionnaire.Equal, Answer: questionnaire.Bool(true)}}},
		},
	}
	if err := q.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	err := q.Check([]questionnaire.Answer{
		{LinkID: "smokes", Values: []questionnaire.Value{questionnaire.Bool(true)}},
	})
	var inv *questionnaire.Invalid
	if errors.As(err, &inv) {
		for _, p := range inv.Problems {
			fmt.Println(p.LinkID, p.Rule)
		}
	}
	// Output: per-day answer.required
}
