package scoring_test

import (
	"fmt"

	"github.com/trialhub/trialhub/services/epro/internal/scoring"
)

func ExampleCompute() {
	rule := scoring.Rule{Name: "total", LinkIDs: []string{"1", "2", "3"}, Bands: []scoring.Band{
		{Min: 0, Max: 4, Label: "Low"}, {Min: 5, Max: 9, Label: "High"},
	}}
	alert := scoring.Alert{Name: "item3", LinkID: "3", Op: scoring.OpGreater, Threshold: 0, Priority: scoring.PriorityUrgent}
	res := scoring.Compute([]scoring.Rule{rule}, []scoring.Alert{alert}, scoring.Items{
		Scores: map[string]float64{"1": 3, "2": 2, "3": 1},
	})
	total, _ := res.Total("total")
	fmt.Println(total.Value, total.Band.Label, len(res.Fired), res.Fired[0].Name)
	// Output: 6 High 1 item3
}

func ExampleRule_CheckBands() {
	rule := scoring.Rule{Name: "total", Bands: []scoring.Band{
		{Min: 0, Max: 4, Label: "Minimal"}, {Min: 6, Max: 27, Label: "More"},
	}}
	for _, p := range rule.CheckBands(0, 27, true) {
		fmt.Println(p.Path, p.Rule, p.Message)
	}
	// Output: bands[1].min bands.gap band starts at 6, leaving 5-5 in no band
}
