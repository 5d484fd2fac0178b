package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform/request"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

const getTrial = "/trialhub.trial.v1.TrialService/GetTrial"

// newTelemetry is one process's telemetry exporting to exp.
func newTelemetry(t *testing.T, service string, exp sdktrace.SpanExporter) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), service, telemetry.WithExporter(exp), telemetry.WithoutRuntimeMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// backTrials answers GetTrial, not_found for trial "missing", and records the
// request.Info trace id it saw.
type backTrials struct {
	trialv1connect.UnimplementedTrialServiceHandler
	mu       sync.Mutex
	traceIDs []string
}

func (b *backTrials) GetTrial(ctx context.Context, req *trialv1.GetTrialRequest) (*trialv1.GetTrialResponse, error) {
	b.mu.Lock()
	b.traceIDs = append(b.traceIDs, request.From(ctx).TraceID)
	b.mu.Unlock()
	if req.GetTrialId() == "missing" {
		return nil, connect.NewError(connect.CodeNotFound, "no such trial")
	}
	return &trialv1.GetTrialResponse{Trial: &trialv1.Trial{TrialId: req.GetTrialId()}}, nil
}

// frontTrials passes GetTrial on to another service.
type frontTrials struct {
	trialv1connect.UnimplementedTrialServiceHandler
	next trialv1connect.TrialServiceClient
}

func (f *frontTrials) GetTrial(ctx context.Context, req *trialv1.GetTrialRequest) (*trialv1.GetTrialResponse, error) {
	res, err := f.next.GetTrial(ctx, req)
	if connect.CodeOf(err) == connect.CodeNotFound {
		// Another service's verdict is not passed through as it is (it would
		// reach the client as internal): the handler answers with its own.
		return nil, connect.NewError(connect.CodeNotFound, "no such trial")
	}
	return res, err
}

// serve runs h behind the telemetry server interceptor on a real listener.
func serve(t *testing.T, tel *telemetry.Telemetry, register func(*connect.Server)) string {
	t.Helper()
	srv := connect.NewServer(tel.ServerInterceptor())
	register(srv)
	mux := http.NewServeMux()
	connecthttp.Mount(mux, srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL
}

func dial(tel *telemetry.Telemetry, url string) trialv1connect.TrialServiceClient {
	return trialv1connect.NewTrialServiceClient(connect.NewClient(
		connecthttp.NewTransport(http.DefaultClient, url), tel.ClientInterceptor()))
}

// twoServices is front -> back over HTTP, each a process of its own sharing one
// exporter, and a plain client (no telemetry) calling front.
func twoServices(t *testing.T) (*tracetest.InMemoryExporter, *backTrials, trialv1connect.TrialServiceClient) {
	exp := tracetest.NewInMemoryExporter()
	back := &backTrials{}
	backURL := serve(t, newTelemetry(t, "trial", exp), func(s *connect.Server) { trialv1connect.RegisterTrialServiceHandler(s, back) })
	frontTel := newTelemetry(t, "epro", exp)
	frontURL := serve(t, frontTel, func(s *connect.Server) {
		trialv1connect.RegisterTrialServiceHandler(s, &frontTrials{next: dial(frontTel, backURL)})
	})
	caller := trialv1connect.NewTrialServiceClient(connect.NewClient(connecthttp.NewTransport(http.DefaultClient, frontURL)))
	return exp, back, caller
}

func spansOfKind(spans tracetest.SpanStubs, kind trace.SpanKind) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func TestRPCSpansFollowOneCallAcrossTwoServers(t *testing.T) {
	exp, back, caller := twoServices(t)
	if _, err := caller.GetTrial(context.Background(), &trialv1.GetTrialRequest{TrialId: "t-1"}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	servers, clients := spansOfKind(spans, trace.SpanKindServer), spansOfKind(spans, trace.SpanKindClient)
	if len(spans) != 3 || len(servers) != 2 || len(clients) != 1 {
		t.Fatalf("got %d spans (%d server, %d client), want 3: front server, its client span, back server", len(spans), len(servers), len(clients))
	}
	// Spans end inner first: the back server's span ends before front's.
	backSpan, frontSpan, client := servers[0], servers[1], clients[0]
	if backSpan.Resource.String() == frontSpan.Resource.String() {
		t.Fatalf("both server spans from one resource %s, want trial and epro", backSpan.Resource)
	}
	if frontSpan.Parent.IsValid() {
		t.Errorf("front server span has parent %s, want a root (the caller sent no traceparent)", frontSpan.Parent.SpanID())
	}
	if client.Parent.SpanID() != frontSpan.SpanContext.SpanID() {
		t.Errorf("client span's parent %s, want the front server span %s", client.Parent.SpanID(), frontSpan.SpanContext.SpanID())
	}
	if backSpan.Parent.SpanID() != client.SpanContext.SpanID() || !backSpan.Parent.IsRemote() {
		t.Errorf("back server span's parent %s (remote %v), want the client span %s from traceparent",
			backSpan.Parent.SpanID(), backSpan.Parent.IsRemote(), client.SpanContext.SpanID())
	}
	traceID := frontSpan.SpanContext.TraceID()
	for _, s := range spans {
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		if s.Name != "trialhub.trial.v1.TrialService/GetTrial" {
			t.Errorf("span name %q, want trialhub.trial.v1.TrialService/GetTrial", s.Name)
		}
		for key, want := range map[string]string{"rpc.system": "connect_rpc", "rpc.service": "trialhub.trial.v1.TrialService", "rpc.method": "GetTrial"} {
			if got := attr(s, key); got != want {
				t.Errorf("%s span %s = %q, want %q", s.SpanKind, key, got, want)
			}
		}
		if s.Status.Code != codes.Unset || attr(s, "rpc.connect_rpc.error_code") != "" {
			t.Errorf("%s span of a call that succeeded: status %v, error_code %q", s.SpanKind, s.Status, attr(s, "rpc.connect_rpc.error_code"))
		}
	}
	if len(back.traceIDs) != 1 || back.traceIDs[0] != traceID.String() {
		t.Errorf("handler saw request.Info.TraceID %q, want the trace %s", back.traceIDs, traceID)
	}
}

func TestRPCSpansRecordTheCode(t *testing.T) {
	exp, _, caller := twoServices(t)
	_, err := caller.GetTrial(context.Background(), &trialv1.GetTrialRequest{TrialId: "missing"})
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("GetTrial(missing) = %v, want not_found", err)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	for _, s := range spans {
		if got := attr(s, "rpc.connect_rpc.error_code"); got != "not_found" {
			t.Errorf("%s span error_code %q, want not_found", s.SpanKind, got)
		}
		// A caller's mistake is not the server's error; any failure is the client's.
		want := codes.Unset
		if s.SpanKind == trace.SpanKindClient {
			want = codes.Error
		}
		if s.Status.Code != want {
			t.Errorf("%s span status %v, want %v", s.SpanKind, s.Status.Code, want)
		}
	}
}

// TestRPCServerContinuesTheCallersTrace: an inbound traceparent is the server
// span's parent, and request.Info names its trace.
func TestRPCServerContinuesTheCallersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	back := &backTrials{}
	url := serve(t, newTelemetry(t, "trial", exp), func(s *connect.Server) { trialv1connect.RegisterTrialServiceHandler(s, back) })
	ctx, call := connect.NewClientContext(context.Background())
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	call.RequestHeader().Set("Traceparent", parent)
	plain := trialv1connect.NewTrialServiceClient(connect.NewClient(connecthttp.NewTransport(http.DefaultClient, url)))
	if _, err := plain.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: "t-1"}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("server span trace %s parent %s, want the traceparent's", s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	if back.traceIDs[0] != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("request.Info.TraceID %q, want the caller's trace", back.traceIDs[0])
	}
}
