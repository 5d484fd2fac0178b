package scoring

import (
	"fmt"
	"slices"
	"testing"
)

// The published bands (Kroenke 2001; Spitzer 2006), written here as plain tables so
// the rule arithmetic is tested apart from the shipped instrument definitions.
var (
	phq9 = Rule{Name: "total", LinkIDs: ids(9), Bands: []Band{
		{0, 4, "Minimal", nil}, {5, 9, "Mild", nil}, {10, 14, "Moderate", nil},
		{15, 19, "Moderately severe", nil}, {20, 27, "Severe", nil},
	}}
	phq9Item9 = Alert{Name: "item9_self_harm", LinkID: "9", Op: OpGreater, Threshold: 0, Priority: PriorityUrgent}
	gad7      = Rule{Name: "total", LinkIDs: ids(7), Bands: []Band{
		{0, 4, "Minimal", nil}, {5, 9, "Mild", nil}, {10, 14, "Moderate", nil}, {15, 21, "Severe", nil},
	}}
)

func ids(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

// spread answers n items so that they sum to total, each 0-3, filling item 1 first
// and item n last: item 9 stays 0 unless the total needs it.
func spread(n, total int) map[string]float64 {
	m := map[string]float64{}
	for i := 1; i <= n; i++ {
		s := min(3, total)
		m[fmt.Sprint(i)] = float64(s)
		total -= s
	}
	return m
}

func TestComputeBandEdges(t *testing.T) {
	tests := []struct {
		name  string
		rule  Rule
		items int
		total int
		band  string
	}{
		{"phq9 0", phq9, 9, 0, "Minimal"}, {"phq9 4", phq9, 9, 4, "Minimal"},
		{"phq9 5", phq9, 9, 5, "Mild"}, {"phq9 9", phq9, 9, 9, "Mild"},
		{"phq9 10", phq9, 9, 10, "Moderate"}, {"phq9 14", phq9, 9, 14, "Moderate"},
		{"phq9 15", phq9, 9, 15, "Moderately severe"}, {"phq9 19", phq9, 9, 19, "Moderately severe"},
		{"phq9 20", phq9, 9, 20, "Severe"}, {"phq9 27", phq9, 9, 27, "Severe"},
		{"gad7 0", gad7, 7, 0, "Minimal"}, {"gad7 4", gad7, 7, 4, "Minimal"},
		{"gad7 5", gad7, 7, 5, "Mild"}, {"gad7 9", gad7, 7, 9, "Mild"},
		{"gad7 10", gad7, 7, 10, "Moderate"}, {"gad7 14", gad7, 7, 14, "Moderate"},
		{"gad7 15", gad7, 7, 15, "Severe"}, {"gad7 21", gad7, 7, 21, "Severe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Compute([]Rule{tt.rule}, nil, Items{Scores: spread(tt.items, tt.total)})
			got, _ := res.Total("total")
			if !got.Known || got.Value != float64(tt.total) {
				t.Fatalf("total = %+v, want %d", got, tt.total)
			}
			if got.Band == nil || got.Band.Label != tt.band {
				t.Fatalf("band = %v, want %q", got.Band, tt.band)
			}
		})
	}
}

func TestComputeItem9Alert(t *testing.T) {
	tests := []struct {
		item9 float64
		fires bool
	}{{0, false}, {1, true}, {2, true}, {3, true}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.item9), func(t *testing.T) {
			s := spread(9, 0)
			s["9"] = tt.item9
			res := Compute([]Rule{phq9}, []Alert{phq9Item9}, Items{Scores: s})
			fired := slices.ContainsFunc(res.Fired, func(a Alert) bool { return a.Name == "item9_self_harm" })
			if fired != tt.fires {
				t.Fatalf("item 9 = %g: fired = %v, want %v", tt.item9, fired, tt.fires)
			}
		})
	}
}

func TestComputeUnknownAndDisabled(t *testing.T) {
	s := spread(9, 12)
	delete(s, "3")
	res := Compute([]Rule{phq9}, []Alert{{Name: "severe", Total: "total", Op: OpGreaterOrEqual, Threshold: 0, Priority: PriorityRoutine}}, Items{Scores: s})
	if got, _ := res.Total("total"); got.Known || got.Band != nil {
		t.Fatalf("a missing item must leave the total unknown, got %+v", got)
	}
	if len(res.Fired) != 0 {
		t.Fatalf("an alert on an unknown total fired: %+v", res.Fired)
	}
	res = Compute([]Rule{phq9}, []Alert{{Name: "i3", LinkID: "3", Op: OpGreaterOrEqual, Priority: PriorityRoutine}}, Items{Scores: s, Disabled: map[string]bool{"3": true}})
	if got, _ := res.Total("total"); !got.Known || got.Value != 9 {
		t.Fatalf("a disabled item must be skipped, got %+v", got)
	}
	if len(res.Fired) != 0 {
		t.Fatalf("an alert on a disabled item fired")
	}
}

func TestOpCompare(t *testing.T) {
	tests := []struct {
		op   Op
		s, t float64
		want bool
	}{
		{OpEqual, 1, 1, true}, {OpEqual, 1, 2, false},
		{OpNotEqual, 1, 2, true}, {OpNotEqual, 2, 2, false},
		{OpGreater, 1, 0, true}, {OpGreater, 0, 0, false},
		{OpLess, -1, 0, true}, {OpLess, 0, 0, false},
		{OpGreaterOrEqual, 0, 0, true}, {OpGreaterOrEqual, -1, 0, false},
		{OpLessOrEqual, 0, 0, true}, {OpLessOrEqual, 1, 0, false},
		{OpUnset, 0, 0, false}, {Op(99), 0, 0, false},
	}
	for _, tt := range tests {
		if got := tt.op.Compare(tt.s, tt.t); got != tt.want {
			t.Errorf("%g %v %g = %v, want %v", tt.s, tt.op, tt.t, got, tt.want)
		}
	}
}

func TestCheckBands(t *testing.T) {
	b := func(bs ...Band) Rule { return Rule{Name: "total", Bands: bs} }
	tests := []struct {
		name     string
		rule     Rule
		min, max float64
		integral bool
		want     []string // "path rule"
	}{
		{"phq9", phq9, 0, 27, true, nil},
		{"gad7", gad7, 0, 21, true, nil},
		{"no bands", b(), 0, 27, false, nil},
		{"gap", b(Band{0, 4, "a", nil}, Band{6, 27, "b", nil}), 0, 27, true, []string{"bands[1].min bands.gap"}},
		{"overlap", b(Band{0, 5, "a", nil}, Band{5, 27, "b", nil}), 0, 27, true, []string{"bands[1].min bands.overlap"}},
		{"misses min", b(Band{1, 27, "a", nil}), 0, 27, true, []string{"bands[0].min bands.cover_min"}},
		{"misses max", b(Band{0, 26, "a", nil}), 0, 27, true, []string{"bands[0].max bands.cover_max"}},
		{"beyond max", b(Band{0, 28, "a", nil}), 0, 27, true, []string{"bands[0].max bands.cover_max"}},
		{"inverted", b(Band{0, 4, "a", nil}, Band{9, 5, "b", nil}, Band{10, 27, "c", nil}), 0, 27, true, []string{"bands[1] band.min_lte_max", "bands[2].min bands.gap"}},
		{"fraction", b(Band{0, 4.5, "a", nil}, Band{5, 27, "b", nil}), 0, 27, true, []string{"bands[0] band.whole_numbers"}},
		{"fractional totals", b(Band{0, 27, "a", nil}), 0, 27, false, []string{"bands bands.integral_total"}},
		{"labels", b(Band{0, 4, "", nil}, Band{5, 9, "x", nil}, Band{10, 27, "x", nil}), 0, 27, true, []string{"bands[0].label band.label_required", "bands[2].label band.label_unique"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range tt.rule.CheckBands(tt.min, tt.max, tt.integral) {
				got = append(got, p.Path+" "+p.Rule)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckAlert(t *testing.T) {
	rules := []Rule{phq9}
	ok := phq9Item9
	tests := []struct {
		name string
		mod  func(a *Alert)
		want []string
	}{
		{"ok", func(*Alert) {}, nil},
		{"total ok", func(a *Alert) { a.LinkID, a.Total = "", "total" }, nil},
		{"no trigger", func(a *Alert) { a.LinkID = "" }, []string{"alert.trigger_required"}},
		{"two triggers", func(a *Alert) { a.Total = "total" }, []string{"alert.one_trigger"}},
		{"unknown total", func(a *Alert) { a.LinkID, a.Total = "", "sum" }, []string{"alert.unknown_total"}},
		{"no op", func(a *Alert) { a.Op = OpUnset }, []string{"alert.op_required"}},
		{"no priority", func(a *Alert) { a.Priority = 0 }, []string{"alert.priority_required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.mod(&a)
			var got []string
			for _, p := range a.CheckAlert(rules) {
				got = append(got, p.Rule)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems = %q, want %q", got, tt.want)
			}
		})
	}
}
