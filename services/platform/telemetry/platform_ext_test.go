package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/logs"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestInTheKitsServer: in the server's telemetry slot, the span sees the code
// the client received and the rpc log line names the span's trace.
func TestInTheKitsServer(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := newTelemetry(t, "trial", exp)
	var out lockedBuffer
	log := slog.New(logs.NewHandler(slog.NewJSONHandler(&out, nil)))
	srv := platform.NewServer("trial", platform.WithLogger(log), platform.WithTelemetry(tel.ServerInterceptor()))
	trialv1connect.RegisterTrialServiceHandler(srv.RPC(), &backTrials{})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	_, err := dial(tel, hs.URL).GetTrial(context.Background(), &trialv1.GetTrialRequest{TrialId: "t-1"})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("GetTrial without a token = %v, want unauthenticated", err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the client's and the server's", len(spans))
	}
	server := spans[0]
	if got := attr(server, "rpc.connect_rpc.error_code"); got != "unauthenticated" {
		t.Errorf("server span error_code %q, want unauthenticated", got)
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "rpc" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no rpc line in %s", out.b.String())
	}
	if line["trace_id"] != server.SpanContext.TraceID().String() || line["span_id"] != server.SpanContext.SpanID().String() {
		t.Errorf("rpc line trace_id %v span_id %v, want the server span %s %s", line["trace_id"], line["span_id"],
			server.SpanContext.TraceID(), server.SpanContext.SpanID())
	}
	if line["code"] != "unauthenticated" {
		t.Errorf("rpc line code %v", line["code"])
	}
}
