package platformtest

import (
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric scrapes url/metrics (a process's, e.g. Env.URL) and sums the counters,
// gauges and untyped values of the family name whose series carry every label
// in labels (other labels, such as the kit's service label, may be there too).
// found is false when no series matches. A scrape that fails or does not parse
// fails the test.
func Metric(t testing.TB, url, name string, labels map[string]string) (sum float64, found bool) {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("%s/metrics: %v", url, err)
	}
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			found = true
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum, found
}
