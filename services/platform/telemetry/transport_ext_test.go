package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestVendorTransport: a vendor call is a client span with its status, without
// the URL's path or query (a phone number may be in it) and without sending the
// trace to the vendor.
func TestVendorTransport(t *testing.T) {
	var traceparent []string
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traceparent = append(traceparent, r.Header.Get("Traceparent"))
		if r.URL.Query().Get("to") == "fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer vendor.Close()
	exp := tracetest.NewInMemoryExporter()
	tel := newTelemetry(t, "notification", exp)
	hc := &http.Client{Transport: tel.Transport(nil)}
	ctx, parent := tel.Tracer("test").Start(context.Background(), "deliver")
	for _, to := range []string{"+31612345678", "fail"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, vendor.URL+"/sms?to="+to, nil)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want two vendor calls and their parent", len(spans))
	}
	for i, want := range []codes.Code{codes.Unset, codes.Error} {
		s := spans[i]
		if s.Name != "HTTP POST" || s.Parent.SpanID() != parent.SpanContext().SpanID() || s.Status.Code != want {
			t.Errorf("span %d: %s parent %s status %v, want HTTP POST under deliver with %v", i, s.Name, s.Parent.SpanID(), s.Status.Code, want)
		}
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); strings.Contains(v, "sms") || strings.Contains(v, "3161") {
				t.Errorf("span attribute %s = %q holds the URL", kv.Key, v)
			}
		}
	}
	if got := attr(spans[1], "http.response.status_code"); got != "503" {
		t.Errorf("status code attribute %q, want 503", got)
	}
	for _, tp := range traceparent {
		if tp != "" {
			t.Errorf("vendor received traceparent %q", tp)
		}
	}
}
