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

func ExampleDefinition_Validate() {
	q := questionnaire.Definition{
		URL: "https://trialhub.example/fhir/Questionnaire/pain", Version: "1", Language: "en",
		Items: []questionnaire.Item{
			{LinkID: "worst", Type: questionnaire.Integer, Text: questionnaire.Localized{"en": "Worst pain (0-10)"},
				Min: &[]questionnaire.Value{questionnaire.Int(10)}[0], Max: &[]questionnaire.Value{questionnaire.Int(0)}[0],
				EnableWhen: []questionnaire.Condition{{Question: "any", Op: questionnaire.Equal, Answer: questionnaire.Bool(true)}}},
			{LinkID: "any", Type: questionnaire.Boolean, Text: questionnaire.Localized{"en": "Any pain?"},
				Options: []questionnaire.Option{{Value: questionnaire.Str("yes")}}},
		},
	}
	var inv *questionnaire.Invalid
	if errors.As(q.Validate(), &inv) {
		for _, p := range inv.Problems {
			fmt.Println(p.Path, p.Rule)
		}
	}
	// Output:
	// items[0] item.min_lte_max
	// items[0].enable_when[0].question enable_when.earlier_item
	// items[1].options item.options_only_for_choice
}
