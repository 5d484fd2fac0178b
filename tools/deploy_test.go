package tools_test

// The deploy/ files (alert rules, Grafana dashboard) are checked here without a
// Prometheus binary: promtool comes with the Debian prometheus package (96 MB
// installed) and github.com/prometheus/prometheus would pull its whole module
// graph into the workspace. Instead the rules are read strictly into
// Prometheus's rule-file shape and validated as rulefmt does (names, durations,
// labels, templates parsed with Prometheus's template functions), and every
// expression is parsed by github.com/VictoriaMetrics/metricsql (a PromQL
// parser; its extensions are refused below by allowing only PromQL's
// functions and aggregations).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// The deploy/ files these tests check, from the repository root.
const (
	rulesFile     = "deploy/prometheus/rules.yml"
	dashboardFile = "deploy/grafana/trialhub.json"
	metricsFile   = "deploy/metrics.txt"
)

// madeByPrometheus are series Prometheus itself writes for every target.
var madeByPrometheus = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

// promqlFunctions are PromQL's functions and aggregation operators (Prometheus
// 3); anything else metricsql accepts is MetricsQL, which Prometheus refuses.
var promqlFunctions = strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh
avg_over_time ceil changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month
day_of_week day_of_year days_in_month deg delta deriv double_exponential_smoothing exp floor
histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
histogram_stdvar histogram_sum hour idelta increase info irate label_join label_replace
last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
sum_over_time tan tanh time timestamp vector year
sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio`)

func repoFile(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", name)) // go test runs in tools/
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// ruleFile is Prometheus's rule file (model/rulefmt), field for field.
type ruleFile struct {
	Groups []struct {
		Name        string            `yaml:"name"`
		Interval    string            `yaml:"interval,omitempty"`
		QueryOffset string            `yaml:"query_offset,omitempty"`
		Limit       int               `yaml:"limit,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Rules       []rule            `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// parseRules reads a rule file and returns it with every problem promtool check
// rules would report.
func parseRules(content []byte) (*ruleFile, []error) {
	var f ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, []error{err}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	groups := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" {
			fail("a group has no name")
		}
		if groups[g.Name] {
			fail("group %q: defined twice", g.Name)
		}
		groups[g.Name] = true
		for _, d := range []string{g.Interval, g.QueryOffset} {
			if _, err := parseDuration(d); err != nil {
				fail("group %q: %v", g.Name, err)
			}
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %q, rule %d (%s%s)", g.Name, i, r.Alert, r.Record)
			switch {
			case r.Alert != "" && r.Record != "":
				fail("%s: both alert and record", where)
			case r.Alert == "" && r.Record == "":
				fail("%s: neither alert nor record", where)
			case r.Record != "":
				if !model.IsValidLegacyMetricName(r.Record) {
					fail("%s: invalid recording rule name", where)
				}
				if len(r.Annotations) > 0 || r.For != "" || r.KeepFiringFor != "" {
					fail("%s: a recording rule takes no annotations, for or keep_firing_for", where)
				}
			}
			if strings.TrimSpace(r.Expr) == "" {
				fail("%s: no expr", where)
			} else if err := checkExpr(r.Expr); err != nil {
				fail("%s: expr: %v", where, err)
			}
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if _, err := parseDuration(d); err != nil {
					fail("%s: %v", where, err)
				}
			}
			for k, v := range r.Labels {
				if !model.LabelName(k).IsValid() || k == model.MetricNameLabel {
					fail("%s: invalid label name %q", where, k)
				}
				if err := checkTemplate(v); err != nil {
					fail("%s: label %s: %v", where, k, err)
				}
			}
			for k, v := range r.Annotations {
				if !model.LabelName(k).IsValid() {
					fail("%s: invalid annotation name %q", where, k)
				}
				if err := checkTemplate(v); err != nil {
					fail("%s: annotation %s: %v", where, k, err)
				}
			}
		}
	}
	return &f, errs
}

func parseDuration(s string) (model.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return model.ParseDuration(s)
}

// checkExpr parses q as PromQL.
func checkExpr(q string) error {
	expr, err := metricsql.Parse(q)
	if err != nil {
		return err
	}
	var bad []string
	metricsql.VisitAll(expr, func(e metricsql.Expr) {
		var name string
		switch e := e.(type) {
		case *metricsql.FuncExpr:
			name = e.Name
		case *metricsql.AggrFuncExpr:
			name = e.Name
		default:
			return
		}
		if !slices.Contains(promqlFunctions, strings.ToLower(name)) {
			bad = append(bad, name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("not PromQL: %s", strings.Join(bad, ", "))
	}
	return nil
}

// templateFuncs are the functions Prometheus's alert templates have
// (template/template.go); checkTemplate only parses, so they are stubs.
var templateFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for _, name := range strings.Fields(`query first label value strvalue args reReplaceAll safeHtml match
title toUpper toLower graphLink tableLink sortByLabel humanize humanize1024 humanizeDuration
humanizePercentage humanizeTimestamp toTime toDuration now pathPrefix externalURL parseDuration
stripPort stripDomain urlQueryEscape`) {
		m[name] = func(...any) any { return nil }
	}
	return m
}()

// checkTemplate parses a label or annotation as Prometheus does: with $labels,
// $externalLabels, $externalURL and $value defined first.
func checkTemplate(text string) error {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	_, err := template.New("rule").Funcs(templateFuncs).Option("missingkey=zero").Parse(defs + text)
	return err
}

// The alert rules pass what `promtool check rules` checks, and each alert says
// how bad it is and what it means.
func TestAlertRulesParse(t *testing.T) {
	content, err := os.ReadFile(repoFile(t, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	f, errs := parseRules(content)
	for _, err := range errs {
		t.Error(err)
	}
	if f == nil {
		return
	}
	names := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: recording rule %q; this file holds alerts only", g.Name, r.Record)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			names[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", r.Alert)
			}
		}
	}
	// What the platform promises to page on.
	for _, want := range []string{"TrialHubBreakerOpen", "TrialHubQueueStuck", "TrialHubJobsDiscarded", "TrialHubShedding",
		"TrialHubSafetyAlertUnacknowledged", "TrialHubAuditTrailBroken"} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// grafanaVar is a dashboard variable in a query: $job, ${job}, $__rate_interval.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

// dashboardQueries returns every PromQL query of the dashboard (panels, rows'
// panels, the variables' label_values metric), with Grafana's variables
// replaced by values PromQL parses.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(repoFile(t, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	expand := func(q string) string {
		return grafanaVar.ReplaceAllStringFunc(q, func(v string) string {
			if strings.Contains(v, "__") {
				return "5m" // $__rate_interval, $__interval, $__range
			}
			return "x"
		})
	}
	out := map[string]string{}
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, r := range panels {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				out[fmt.Sprintf("panel %q query %c", p.Title, 'A'+i)] = expand(tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) == nil && strings.HasPrefix(q.Query, "label_values(") {
			sel, _, _ := strings.Cut(strings.TrimPrefix(q.Query, "label_values("), ",")
			out["variable "+v.Name] = strings.TrimSpace(sel)
		}
	}
	return out
}

// Every dashboard query parses as PromQL.
func TestDashboardQueriesParse(t *testing.T) {
	queries := dashboardQueries(t)
	if len(queries) < 20 {
		t.Fatalf("%d queries, want the dashboard's (at least 20)", len(queries))
	}
	for where, q := range queries {
		if err := checkExpr(q); err != nil {
			t.Errorf("%s: %q: %v", where, q, err)
		}
	}
}

// metricNames returns the metric names q selects, a histogram's series
// (_bucket, _sum, _count) by their family's name when families has it.
func metricNames(t *testing.T, q string, families map[string]bool) []string {
	t.Helper()
	expr, err := metricsql.Parse(q)
	if err != nil {
		t.Fatalf("%q: %v", q, err)
	}
	var names []string
	metricsql.VisitAll(expr, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok || me.IsEmpty() {
			return
		}
		for _, filters := range me.LabelFilterss {
			name := ""
			for _, f := range filters {
				if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
					name = f.Value
				}
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && families[base] {
					name = base
				}
			}
			if name == "" {
				t.Errorf("%q selects without a metric name", q)
			}
			names = append(names, name)
		}
	})
	return names
}

func exported(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(repoFile(t, metricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out[line] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func union(set map[string]bool, lists ...[]string) map[string]bool {
	out := map[string]bool{}
	for k := range set {
		out[k] = true
	}
	for _, l := range lists {
		for _, k := range l {
			out[k] = true
		}
	}
	return out
}

// The rules and the dashboard use only metrics the platform exports
// (deploy/metrics.txt, which services/stack checks against a scrape of the
// running stack) or the notification service's, and each exported family is
// shown or alerted on.
func TestDeployUsesExportedMetrics(t *testing.T) {
	served := exported(t)
	allowed := union(served, madeByPrometheus)
	used := map[string]bool{}
	check := func(where, q string) {
		for _, name := range metricNames(t, q, allowed) {
			used[name] = true
			if !allowed[name] {
				t.Errorf("%s uses %s, which no TrialHub process exports (see %s)", where, name, metricsFile)
			}
		}
	}
	content, err := os.ReadFile(repoFile(t, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	f, errs := parseRules(content)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	for where, q := range dashboardQueries(t) {
		check("dashboard "+where, q)
	}
	for name := range served {
		if !used[name] {
			t.Errorf("%s is listed as exported but neither the dashboard nor an alert shows it", name)
		}
	}
}

// The checks bite: a misspelt metric, a broken expression, a MetricsQL-only
// function, a bad duration and a broken template are caught.
func TestDeployChecksCatchMistakes(t *testing.T) {
	allowed := union(exported(t), madeByPrometheus)
	names := metricNames(t, `histogram_quantile(0.99, sum by (le) (rate(rpc_server_duration_seconds_bucket[5m]))) + trialhub_breaker_state`, allowed)
	if !slices.Contains(names, "rpc_server_duration_seconds") || !slices.Contains(names, "trialhub_breaker_state") || allowed["trialhub_breaker_state"] {
		t.Fatalf("names %v: want the histogram by its family and the unknown name as it is", names)
	}
	bad := `groups:
  - name: g
    rules:
      - alert: A
        expr: sum(rate(x[5m]) >
      - alert: B
        expr: range_median(up)
      - alert: C
        expr: up == 0
        for: 5 minutes
        annotations: {summary: "{{ $labels.job "}
      - alert: D
        expr: up == 0
        severity: critical
`
	if _, errs := parseRules([]byte(bad)); len(errs) != 1 || !strings.Contains(errs[0].Error(), "severity") {
		t.Fatalf("errors %v, want the unknown field refused", errs)
	}
	bad = strings.TrimSuffix(bad, "        severity: critical\n")
	_, errs := parseRules([]byte(bad))
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{`rule 0 (A): expr`, `rule 1 (B): expr: not PromQL: range_`, `rule 2 (C): unknown unit`, `rule 2 (C): annotation summary`} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors\n%s\nlack %q", joined, want)
		}
	}
}
