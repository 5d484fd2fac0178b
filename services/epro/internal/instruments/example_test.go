package instruments_test

import (
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

func ExamplePHQ9() {
	phq := instruments.PHQ9()
	var answers []q.Answer
	for i, score := range []int{1, 1, 2, 1, 0, 1, 1, 0, 1} { // items 1..9
		opt := phq.Item(fmt.Sprint(i + 1)).Options[score]
		answers = append(answers, q.Answer{LinkID: fmt.Sprint(i + 1), Values: []q.Value{opt.Value}})
	}
	if err := phq.Check(answers); err != nil {
		fmt.Println(err)
		return
	}
	res := phq.Score(answers)
	total, _ := res.Total("total")
	fmt.Println(phq.Canonical())
	fmt.Println(total.Value, total.Band.Label)
	for _, a := range res.Fired {
		fmt.Println(a.Name, a.Priority == scoring.PriorityUrgent)
	}
	// Output:
	// https://trialhub.example/fhir/Questionnaire/phq-9|1.0.0
	// 8 Mild
	// item9_self_harm true
}
