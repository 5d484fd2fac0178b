package stack_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
)

// One run of the flow serves the three observability tests: starting the stack
// and walking a patient through it is most of their cost.
func TestObservabilityOfAPatientFlow(t *testing.T) {
	o := startObserved(t)
	before, _ := o.scrape(t)
	flow := patientFlow(t, o)
	// The database collectors query at most every 5 s: wait for the next answer.
	var after map[string]*dto.MetricFamily
	var metricsText string
	eventually(t, "the audit collectors to count the flow's events", func() bool {
		after, metricsText = o.scrape(t)
		for _, svc := range []string{"patient", "trial", "epro"} {
			b, _ := sample(before, "trialhub_audit_events_total", map[string]string{"service": svc})
			if a, _ := sample(after, "trialhub_audit_events_total", map[string]string{"service": svc}); a <= b {
				return false
			}
		}
		return true
	})

	t.Run("metrics move with the flow", func(t *testing.T) { checkMetrics(t, before, after) })
	if dump := os.Getenv("TRIALHUB_TEST_DUMP_LOG"); dump != "" {
		_ = os.WriteFile(dump, []byte(o.logs.String()), 0o600)
	}
	t.Run("exported metrics are the listed ones", func(t *testing.T) { checkMetricsList(t, after) })
	// Stopping flushes every span still batched, and every log line is written.
	o.stop()
	t.Run("one trace follows the submission", func(t *testing.T) { checkTrace(t, o.spans.all()) })
	t.Run("vendor calls are spans", func(t *testing.T) { checkVendorSpans(t, o.spans.all()) })
	t.Run("no personal data in logs, spans or metrics", func(t *testing.T) {
		checkNoPII(t, flow, map[string]string{"log": o.logs.String(), "spans": o.spans.text(), "metrics": metricsText})
		checkRPCLines(t, o.logs.String())
		if r := o.redacted(); len(r) > 0 {
			// The net caught something a handler tried to log: the handler must be
			// fixed to log ids only.
			t.Errorf("the redaction layer had to refuse %d values: %v", len(r), r)
		}
	})
}

// span names as the kit makes them.
func serverSpan(procedure string) string { return strings.TrimPrefix(procedure, "/") }

// checkTrace: the visit-completion delivery is one trace from the patient's
// submission to the trial service: ePRO's SubmitResponse server span, the River
// job's span under it, the job's client span to the trial service and the trial
// service's server span, each a descendant of the one before.
func checkTrace(t *testing.T, spans []*tracepb.Span) {
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	// descends reports whether s has ancestor a (following parent ids).
	descends := func(s, a *tracepb.Span) bool {
		for p := hex.EncodeToString(s.GetParentSpanId()); p != ""; {
			parent, ok := byID[p]
			if !ok {
				return false
			}
			if parent == a {
				return true
			}
			p = hex.EncodeToString(parent.GetParentSpanId())
		}
		return false
	}
	find := func(trace []byte, name string, kind tracepb.Span_SpanKind, under *tracepb.Span) *tracepb.Span {
		for _, s := range spans {
			if s.GetName() == name && s.GetKind() == kind && (trace == nil || slices.Equal(s.GetTraceId(), trace)) &&
				(under == nil || descends(s, under)) {
				return s
			}
		}
		return nil
	}
	for _, d := range flowDeliveries {
		work := find(nil, "river.work/"+d.job, tracepb.Span_SPAN_KIND_CONSUMER, nil)
		if work == nil {
			t.Fatalf("no span of the %s job among %d spans", d.job, len(spans))
		}
		trace := work.GetTraceId()
		var submit *tracepb.Span
		for _, s := range spans {
			if s.GetName() == serverSpan(eprov1connect.EproServiceSubmitResponseProcedure) && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER &&
				slices.Equal(s.GetTraceId(), trace) && descends(work, s) {
				submit = s
			}
		}
		if submit == nil {
			t.Fatalf("%s ran in trace %x, which holds no SubmitResponse server span it descends from", d.job, trace)
		}
		// The job was inserted in the submission's transaction: its span is the
		// job's ancestor.
		var tx *tracepb.Span
		for _, s := range spans {
			if s.GetName() == "db transaction" && descends(s, submit) && descends(work, s) {
				tx = s
			}
		}
		if tx == nil {
			t.Errorf("no db transaction span between SubmitResponse and the %s job", d.job)
		}
		client := find(trace, serverSpan(d.procedure), tracepb.Span_SPAN_KIND_CLIENT, work)
		if client == nil {
			t.Fatalf("no client span %s under the %s job's span", serverSpan(d.procedure), d.job)
		}
		server := find(trace, serverSpan(d.procedure), tracepb.Span_SPAN_KIND_SERVER, client)
		if server == nil {
			t.Fatalf("no server span %s under its client span", serverSpan(d.procedure))
		}
		if find(trace, "db transaction", tracepb.Span_SPAN_KIND_CLIENT, server) == nil {
			t.Errorf("no db transaction span under the %s server span", serverSpan(d.procedure))
		}
		if !slices.Equal(server.GetParentSpanId(), client.GetSpanId()) {
			t.Errorf("the server span's parent is %x, want the client span %x (traceparent carried on the call)", server.GetParentSpanId(), client.GetSpanId())
		}
		if server.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR || client.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("the delivery's spans report an error: client %v, server %v", client.GetStatus(), server.GetStatus())
		}
		if d.then != "" {
			// The procedure's own job runs in the same trace, under its server
			// span, and calls the vendor in a client span of its own.
			next := find(trace, "river.work/"+d.then, tracepb.Span_SPAN_KIND_CONSUMER, server)
			if next == nil {
				t.Fatalf("no span of the %s job under the %s server span", d.then, serverSpan(d.procedure))
			}
			if find(trace, "HTTP POST", tracepb.Span_SPAN_KIND_CLIENT, next) == nil {
				t.Errorf("no vendor client span under the %s job", d.then)
			}
		}
		n := 0
		for _, s := range spans {
			if slices.Equal(s.GetTraceId(), trace) {
				n++
			}
		}
		t.Logf("%s: one trace of %d spans from SubmitResponse through river.work/%s to %s", d.job, n, d.job, d.procedure)
	}
}

// checkVendorSpans: the registration SMS went to the (fake) vendor in a client
// span of the job that sent it, without the URL's path or query.
func checkVendorSpans(t *testing.T, spans []*tracepb.Span) {
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	names := map[string]int{}
	for _, s := range spans {
		names[s.GetName()]++
		if !strings.HasPrefix(s.GetName(), "HTTP ") || s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			continue
		}
		parent := byID[hex.EncodeToString(s.GetParentSpanId())]
		if parent == nil || !strings.HasPrefix(parent.GetName(), "river.work/") {
			continue
		}
		for _, a := range s.GetAttributes() {
			if strings.HasPrefix(a.GetKey(), "url.") || a.GetKey() == "http.url" || a.GetKey() == "http.target" {
				t.Errorf("vendor span records %s", a.GetKey())
			}
		}
		return
	}
	t.Fatalf("no vendor client span under a job's span; spans: %v", names)
}

// checkNoPII fails when any value the flow used as personal data or a
// credential appears in what the stack emitted.
func checkNoPII(t *testing.T, flow flowResult, outputs map[string]string) {
	if len(outputs["log"]) == 0 || len(outputs["spans"]) == 0 || len(outputs["metrics"]) == 0 {
		t.Fatalf("nothing to scan: %d bytes of log, %d of spans, %d of metrics", len(outputs["log"]), len(outputs["spans"]), len(outputs["metrics"]))
	}
	// The scan would find them: the log does carry the flow's subject_uuid.
	if !strings.Contains(outputs["log"], flow.subject) {
		t.Fatalf("the log never names the flow's subject %s: it did not capture the flow", flow.subject)
	}
	for what, value := range flow.secrets {
		if value == "" {
			t.Fatalf("the flow left %s empty", what)
		}
		// A number (the SMS code, a mobile without its country code) counts only
		// where no other digit touches it, or a timestamp could match it.
		pattern := regexp.QuoteMeta(value)
		if strings.Trim(value, "0123456789") == "" {
			pattern = `(?:^|[^0-9])` + pattern + `(?:[^0-9]|$)`
		}
		re := regexp.MustCompile(pattern)
		for where, text := range outputs {
			if loc := re.FindStringIndex(text); loc != nil {
				from, to := max(loc[0]-120, 0), min(loc[1]+120, len(text))
				t.Errorf("the %s appears in the %s: ...%s...", what, where, text[from:to])
			}
		}
	}
}

// checkRPCLines: every rpc line names the call (the owning service, procedure, code,
// duration_ms, request_id), its trace (trace_id, span_id) and, when the caller
// was authenticated, who called (subject_uuid for a patient, actor otherwise).
func checkRPCLines(t *testing.T, log string) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if e["msg"] != "rpc" {
			continue
		}
		for _, k := range []string{"time", "level", "service", "procedure", "code", "duration_ms", "request_id", "trace_id", "span_id"} {
			if e[k] == nil || e[k] == "" {
				t.Errorf("rpc line without %s: %s", k, sc.Text())
			}
		}
		if e["role"] != nil && e["subject_uuid"] == nil && e["actor"] == nil {
			t.Errorf("rpc line of an authenticated call without subject_uuid or actor: %s", sc.Text())
		}
		if e["role"] == "PATIENT" && e["subject_uuid"] == nil {
			t.Errorf("a patient's call without subject_uuid: %s", sc.Text())
		}
		procedure, _ := e["procedure"].(string)
		if rest, ok := strings.CutPrefix(procedure, "/trialhub."); ok {
			// The dev stack serves every service on one port; the line names the
			// one that owns the procedure.
			if owner, _, _ := strings.Cut(rest, "."); e["service"] != owner {
				t.Errorf("rpc line of %s says service %v, want %s", procedure, e["service"], owner)
			}
		}
		if strings.HasPrefix(procedure, "/grpc.") && e["service"] != "trialhub" {
			t.Errorf("rpc line of %s says service %v, want the process's name trialhub", procedure, e["service"])
		}
		seen[procedure] = true
	}
	for _, p := range []string{"/grpc.health.v1.Health/Check", patientv1connect.PatientServiceInviteParticipantProcedure, patientv1connect.AuthServiceActivateAccountProcedure,
		trialv1connect.TrialServiceEnrollSubjectProcedure, eprov1connect.EproServiceSubmitResponseProcedure,
		trialv1connect.TrialServiceRecordVisitCompletionProcedure} {
		if !seen[p] {
			t.Errorf("no rpc line for %s", p)
		}
	}
}

// checkMetrics: the RPC and business series count what the flow did.
func checkMetrics(t *testing.T, before, after map[string]*dto.MetricFamily) {
	delta := func(name string, labels map[string]string) float64 {
		b, _ := sample(before, name, labels)
		a, ok := sample(after, name, labels)
		if !ok {
			t.Errorf("no %s%v series after the flow", name, labels)
		}
		return a - b
	}
	ok := map[string]string{"code": "ok"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64 // the flow adds at least this much
	}{
		{"rpc_server_duration_seconds", with(ok, "procedure", patientv1connect.PatientServiceInviteParticipantProcedure), 1},
		{"rpc_server_duration_seconds", with(ok, "procedure", patientv1connect.AuthServiceActivateAccountProcedure), 1},
		{"rpc_server_duration_seconds", with(ok, "procedure", trialv1connect.TrialServiceEnrollSubjectProcedure), 1},
		{"rpc_server_duration_seconds", with(ok, "procedure", eprov1connect.EproServiceSubmitResponseProcedure), 1},
		{"rpc_server_duration_seconds", map[string]string{"procedure": eprov1connect.EproServiceSubmitResponseProcedure, "code": "invalid_argument"}, 1},
		{"rpc_server_duration_seconds", map[string]string{"procedure": patientv1connect.AuthServiceLoginProcedure, "code": "unauthenticated"}, 1},
		{"rpc_server_duration_seconds", with(ok, "procedure", trialv1connect.TrialServiceRecordVisitCompletionProcedure), 1},
		// The job's call, and ePRO's worklist polls, from the client side.
		{"rpc_client_duration_seconds", with(ok, "procedure", trialv1connect.TrialServiceRecordVisitCompletionProcedure), 1},
		{"rpc_client_duration_seconds", with(ok, "procedure", trialv1connect.TrialServiceListWorklistProcedure), 1},
		// The safety alert: ePRO's job calls the notification service, which asks
		// the patient service for the site's staff and pushes to the vendor.
		{"rpc_server_duration_seconds", with(ok, "procedure", notificationv1connect.NotificationServiceSendNotificationProcedure), 1},
		{"rpc_client_duration_seconds", with(ok, "procedure", patientv1connect.AuthServiceListSiteStaffProcedure), 1},
		{"notification_vendor_requests_total", map[string]string{"outcome": "accepted", "service": "notification"}, 1},
		// Business: the accepted submissions, the refused sign-in, the audit trails.
		{"epro_submissions_total", map[string]string{"outcome": "accepted", "service": "epro"}, 1},
		{"epro_submissions_total", map[string]string{"outcome": "quarantined", "service": "epro"}, 1},
		{"epro_quarantined_submissions_total", map[string]string{"reason": "ALREADY_ANSWERED", "service": "epro"}, 1},
		{"patient_login_failures_total", map[string]string{"reason": "credentials", "service": "patient"}, 1},
		{"trialhub_audit_events_total", map[string]string{"service": "patient"}, 3},
		{"trialhub_audit_events_total", map[string]string{"service": "trial"}, 1},
		{"trialhub_audit_events_total", map[string]string{"service": "epro"}, 1},
	} {
		if d := delta(c.name, c.labels); d < c.min {
			t.Errorf("%s%v moved by %v during the flow, want at least %v", c.name, c.labels, d, c.min)
		}
	}
	// Every service's clients report their breakers. Their state is not asserted:
	// on a loaded machine a slow dependency may rightly open one for a while.
	for _, labels := range []map[string]string{
		{"service": "epro", "dependency": "trial"},
		{"service": "trial", "dependency": "patient"},
		{"service": "epro", "dependency": "notification"},
		{"service": "notification", "dependency": "patient"},
		{"service": "notification", "dependency": "push-vendor"},
	} {
		if v, found := sample(after, "trialhub_client_breaker_state", labels); !found || v < 0 || v > 2 {
			t.Errorf("trialhub_client_breaker_state%v = %v (present %v), want 0, 1 or 2", labels, v, found)
		}
		if _, found := sample(after, "trialhub_client_breaker_transitions_total", labels); !found {
			t.Errorf("no trialhub_client_breaker_transitions_total%v series", labels)
		}
	}
	// State series: the collectors work, each audit trail verified intact at start.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"trialhub_collector_up", map[string]string{"service": "epro", "collector": "river_jobs"}, 1},
		{"trialhub_collector_up", map[string]string{"service": "patient", "collector": "audit_events"}, 1},
		{"trialhub_audit_verification_intact", map[string]string{"service": "epro"}, 1},
		{"trialhub_audit_verification_intact", map[string]string{"service": "patient"}, 1},
		{"trialhub_audit_verification_intact", map[string]string{"service": "trial"}, 1},
	} {
		if v, found := sample(after, c.name, c.labels); !found || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, found, c.want)
		}
	}
}

// checkMetricsList: deploy/metrics.txt, which the dashboard and the alert rules
// are checked against (tools/deploy_test.go), lists exactly the platform's own
// families the stack serves, and the runtime ones it names exist.
func checkMetricsList(t *testing.T, families map[string]*dto.MetricFamily) {
	listed := metricsList(t)
	for _, name := range listed {
		if families[name] == nil {
			t.Errorf("deploy/metrics.txt lists %s, which the stack does not serve", name)
		}
	}
	for name := range families {
		own := false
		for _, prefix := range []string{"rpc_", "trialhub_", "patient_", "trial_", "epro_", "notification_"} {
			own = own || strings.HasPrefix(name, prefix)
		}
		if own && !slices.Contains(listed, name) {
			t.Errorf("the stack serves %s, which deploy/metrics.txt does not list (add it, and show it on the dashboard)", name)
		}
	}
}

// metricsList reads deploy/metrics.txt.
func metricsList(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names
}
