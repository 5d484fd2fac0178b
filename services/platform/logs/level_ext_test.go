package logs_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trialhub/trialhub/services/platform/logs"
)

func TestLevelHandler(t *testing.T) {
	var level slog.LevelVar
	srv := httptest.NewServer(logs.LevelHandler(&level))
	defer srv.Close()
	do := func(method, body, contentType string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := do("GET", "", ""); code != 200 || body != `{"level":"INFO"}` {
		t.Errorf("GET = %d %s", code, body)
	}
	if code, body := do("PUT", `{"level":"debug"}`, "application/json"); code != 200 || body != `{"level":"DEBUG"}` || level.Level() != slog.LevelDebug {
		t.Errorf("PUT debug = %d %s, level %v", code, body, level.Level())
	}
	if code, body := do("PUT", "warn\n", "text/plain"); code != 200 || body != `{"level":"WARN"}` || level.Level() != slog.LevelWarn {
		t.Errorf("PUT warn = %d %s, level %v", code, body, level.Level())
	}
	if code, _ := do("PUT", "loud", "text/plain"); code != http.StatusBadRequest || level.Level() != slog.LevelWarn {
		t.Errorf("PUT loud = %d, level %v: want 400 and the level unchanged", code, level.Level())
	}
	if code, _ := do("PUT", `{"level":`, "application/json"); code != http.StatusBadRequest {
		t.Errorf("PUT bad JSON = %d, want 400", code)
	}
	if code, _ := do("POST", "debug", ""); code != http.StatusMethodNotAllowed || level.Level() != slog.LevelWarn {
		t.Errorf("POST = %d, want 405 and the level unchanged", code)
	}
}

func TestRoutine(t *testing.T) {
	for p, want := range map[string]bool{
		"/grpc.health.v1.Health/Check":                                   true,
		"/grpc.health.v1.Health/Watch":                                   true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
		"/trialhub.epro.v1.EproService/SubmitResponse":                   false,
		"/trialhub.patient.v1.PatientService/Check":                      false,
		"/grpc.health.v1.HealthX/Check":                                  false,
	} {
		if got := logs.Routine(p); got != want {
			t.Errorf("Routine(%s) = %v, want %v", p, got, want)
		}
	}
}
