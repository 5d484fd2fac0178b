package instruments

import (
	"fmt"
	"testing"

	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

func TestShippedValidate(t *testing.T) {
	for _, d := range All() {
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %v", d.Canonical(), err)
		}
	}
}

// answers answers items 1..n so that they sum to total, each 0-3; item9 forces the
// score of item 9 (PHQ-9) and fills the rest around it.
func answers(d *q.Definition, n, total, item9 int) []q.Answer {
	scale := d.Item("1").Options
	scores := make([]int, n+1)
	if item9 >= 0 {
		scores[9], total = item9, total-item9
	}
	for i := 1; i <= n; i++ {
		if i == 9 && item9 >= 0 {
			continue
		}
		scores[i] = min(3, total)
		total -= scores[i]
	}
	var out []q.Answer
	for i := 1; i <= n; i++ {
		out = append(out, q.Answer{LinkID: fmt.Sprint(i), Values: []q.Value{scale[scores[i]].Value}})
	}
	return out
}

func TestPHQ9Scores(t *testing.T) {
	tests := []struct {
		total, item9 int
		band         string
		alert        bool
	}{
		{0, 0, "Minimal", false}, {4, 0, "Minimal", false},
		{5, 0, "Mild", false}, {9, 0, "Mild", false},
		{10, 0, "Moderate", false}, {14, 0, "Moderate", false},
		{15, 0, "Moderately severe", false}, {19, 0, "Moderately severe", false},
		{20, 0, "Severe", false}, {24, 0, "Severe", false}, {27, 3, "Severe", true},
		{1, 1, "Minimal", true}, {4, 2, "Minimal", true}, {9, 3, "Mild", true},
	}
	d := PHQ9()
	for _, tt := range tests {
		t.Run(fmt.Sprintf("total %d item9 %d", tt.total, tt.item9), func(t *testing.T) {
			as := answers(d, 9, tt.total, tt.item9)
			if err := d.Check(as); err != nil {
				t.Fatal(err)
			}
			res := d.Score(as)
			total, _ := res.Total("total")
			if !total.Known || total.Value != float64(tt.total) || total.Band.Label != tt.band {
				t.Fatalf("total = %+v band %v, want %d %q", total, total.Band, tt.total, tt.band)
			}
			if fired := len(res.Fired) == 1 && res.Fired[0].Name == "item9_self_harm"; fired != tt.alert || len(res.Fired) > 1 {
				t.Fatalf("fired = %v, want item 9 alert %v", res.Fired, tt.alert)
			}
		})
	}
}

func TestGAD7Scores(t *testing.T) {
	tests := []struct {
		total int
		band  string
	}{{0, "Minimal"}, {4, "Minimal"}, {5, "Mild"}, {9, "Mild"}, {10, "Moderate"}, {14, "Moderate"}, {15, "Severe"}, {21, "Severe"}}
	d := GAD7()
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.total), func(t *testing.T) {
			as := answers(d, 7, tt.total, -1)
			if err := d.Check(as); err != nil {
				t.Fatal(err)
			}
			res := d.Score(as)
			total, _ := res.Total("total")
			if !total.Known || total.Value != float64(tt.total) || total.Band.Label != tt.band || len(res.Fired) != 0 {
				t.Fatalf("total = %+v band %v fired %v, want %d %q", total, total.Band, res.Fired, tt.total, tt.band)
			}
		})
	}
}

func TestPublishedFacts(t *testing.T) {
	phq, gad := PHQ9(), GAD7()
	checks := []struct {
		name      string
		got, want any
	}{
		{"phq9 panel", phq.Code.Code, "44249-1"},
		{"phq9 total", phq.Rules[0].Code.Code, "44261-6"},
		{"phq9 item 9", phq.Item("9").Code.Code, "44260-8"},
		{"phq9 items", len(phq.Rules[0].LinkIDs), 9},
		{"phq9 stem", phq.Item("stem").Text["en"], "Over the last 2 weeks, how often have you been bothered by any of the following problems?"},
		{"phq9 item 1", phq.Item("1").Text["en"], "Little interest or pleasure in doing things"},
		{"gad7 panel", gad.Code.Code, "69737-5"},
		{"gad7 total", gad.Rules[0].Code.Code, "70274-6"},
		{"gad7 items", len(gad.Rules[0].LinkIDs), 7},
		{"gad7 item 7", gad.Item("7").Text["en"], "Feeling afraid, as if something awful might happen"},
		{"scale", fmt.Sprint(labels(phq.Item("5").Options)), "[Not at all:0 Several days:1 More than half the days:2 Nearly every day:3]"},
		{"canonical", phq.Canonical(), "https://trialhub.example/fhir/Questionnaire/phq-9|1.0.0"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// A missing answer leaves the total unknown and is refused by Check.
	as := answers(phq, 9, 10, 0)[:8]
	if err := phq.Check(as); err == nil {
		t.Error("8 of 9 answers accepted")
	}
	if total, _ := phq.Score(as).Total("total"); total.Known {
		t.Errorf("8 of 9 answers scored %v", total.Value)
	}
	// Copies are independent: a caller editing one cannot change the shipped instrument.
	PHQ9().Items[1].Text["en"] = "changed"
	if PHQ9().Item("1").Text["en"] == "changed" {
		t.Error("PHQ9 returns shared state")
	}
}

func labels(opts []q.Option) []string {
	var out []string
	for _, o := range opts {
		out = append(out, fmt.Sprintf("%s:%g", o.Value.Coding.Display, *o.Score))
	}
	return out
}

// BenchmarkPHQ9Submission is the domain part of a submission's hot path: check the
// nine answers against the definition, then score them.
func BenchmarkPHQ9Submission(b *testing.B) {
	d := PHQ9()
	as := answers(d, 9, 14, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Check(as); err != nil {
			b.Fatal(err)
		}
		if total, _ := d.Score(as).Total("total"); total.Value != 14 {
			b.Fatal(total)
		}
	}
}
