package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/internal/logbuf"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
)

// logLines parses a JSON log.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		out = append(out, entry)
	}
	return out
}

// A load balancer's probes do not fill the log: 1000 health checks write no
// line at INFO, and each is still there at DEBUG for whoever turns it on.
func TestHealthChecksAreLoggedAtDebugOnly(t *testing.T) {
	f := newFixture(t) // logs at DEBUG
	conn := f.grpcConn()
	health := healthv1.NewHealthClient(conn)
	for i := range 1000 {
		if _, err := health.Check(context.Background(), &healthv1.HealthCheckRequest{}); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	var info, debug int
	for _, e := range logLines(t, f.logs.String()) {
		if e["procedure"] != "/grpc.health.v1.Health/Check" {
			continue
		}
		switch e["level"] {
		case "INFO":
			info++
		case "DEBUG":
			debug++
		}
	}
	if info != 0 || debug != 1000 {
		t.Fatalf("1000 health checks: %d lines at INFO, %d at DEBUG; want 0 and 1000", info, debug)
	}
	// Other calls keep their INFO line.
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_PATIENT, uuid.NewString())))
	if _, err := c.GetProfile(context.Background(), &patientv1.GetProfileRequest{}); err != nil {
		t.Fatal(err)
	}
	if lines := f.rpcLines(patientv1connect.PatientServiceGetProfileProcedure); len(lines) != 1 || lines[0]["level"] != "INFO" {
		t.Fatalf("GetProfile lines %v, want one at INFO", lines)
	}
}

// A call slower than WithSlowCall is a WARN line marked slow, with its duration;
// one faster keeps its level.
func TestSlowCallsAreLoggedAtWarn(t *testing.T) {
	f := newFixture(t, platform.WithSlowCall(50*time.Millisecond))
	admin := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	done := make(chan error, 1)
	go func() {
		_, err := admin.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
			SubjectUuid: uuid.NewString(), Reason: "block until released"})
		done <- err
	}()
	<-f.entered
	time.Sleep(60 * time.Millisecond) // past the threshold, whatever the machine's speed
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := f.rpcLines(patientv1connect.PatientServiceGetPatientIdentityProcedure)
	if len(lines) != 1 {
		t.Fatalf("lines %v, want one", lines)
	}
	if e := lines[0]; e["level"] != "WARN" || e["slow"] != true || e["code"] != "ok" || e["duration_ms"].(float64) < 50 {
		t.Fatalf("slow call logged as %v, want WARN, slow, ok, duration_ms >= 50", e)
	}

	g := newFixture(t, platform.WithSlowCall(time.Hour))
	admin = patientv1connect.NewPatientServiceClient(g.client(g.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	if _, err := admin.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
		SubjectUuid: uuid.NewString(), Reason: "answer at once please"}); err != nil {
		t.Fatal(err)
	}
	if lines := g.rpcLines(patientv1connect.PatientServiceGetPatientIdentityProcedure); len(lines) != 1 || lines[0]["level"] != "INFO" || lines[0]["slow"] != nil {
		t.Fatalf("fast call lines %v, want one at INFO without slow", lines)
	}
}

// An ADMIN changes the level of a running process at /admin/log-level; other
// roles and anonymous callers cannot.
func TestAdminChangesTheLogLevelAtRuntime(t *testing.T) {
	logs := &logbuf.Buffer{}
	level := new(slog.LevelVar) // INFO
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	env := platformtest.Start(t, notes.Service("notes"), platformtest.WithSQLite(), platformtest.WithLogger(log), platformtest.WithLevel(level))
	check := func() {
		t.Helper()
		res, err := http.Post(env.URL+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("health: %s", res.Status)
		}
	}
	healthLines := func() int {
		n := 0
		for _, e := range logLines(t, logs.String()) {
			if e["procedure"] == "/grpc.health.v1.Health/Check" {
				n++
			}
		}
		return n
	}
	call := func(method, token, body string) (int, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, env.URL+platform.LogLevelPath, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		out := map[string]string{}
		_ = json.Unmarshal(raw, &out)
		return res.StatusCode, out
	}
	admin := env.Token(t, platformtest.Admin())

	check()
	if n := healthLines(); n != 0 {
		t.Fatalf("at INFO: %d health lines, want 0", n)
	}
	if status, out := call(http.MethodGet, admin, ""); status != http.StatusOK || out["level"] != "INFO" {
		t.Fatalf("GET: %d %v, want 200 INFO", status, out)
	}
	if status, out := call(http.MethodPut, "", `{"level":"debug"}`); status != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Fatalf("PUT without a token: %d %v, want 401 unauthenticated", status, out)
	}
	if status, out := call(http.MethodPut, "not-a-token", `{"level":"debug"}`); status != http.StatusUnauthorized {
		t.Fatalf("PUT with a bad token: %d %v, want 401", status, out)
	}
	for _, caller := range []auth.Caller{platformtest.Patient(), platformtest.Investigator("site-1"), platformtest.Service("trial")} {
		if status, out := call(http.MethodPut, env.Token(t, caller), `{"level":"debug"}`); status != http.StatusForbidden || out["code"] != "permission_denied" {
			t.Fatalf("PUT as %v: %d %v, want 403 permission_denied", caller.Role, status, out)
		}
	}
	if level.Level() != slog.LevelInfo {
		t.Fatalf("level %v after refused changes, want INFO", level.Level())
	}
	if status, _ := call(http.MethodPut, admin, `{"level":"loud"}`); status != http.StatusBadRequest {
		t.Fatalf("PUT a bad level: %d, want 400", status)
	}

	if status, out := call(http.MethodPut, admin, `{"level":"debug"}`); status != http.StatusOK || out["level"] != "DEBUG" {
		t.Fatalf("PUT debug as admin: %d %v, want 200 DEBUG", status, out)
	}
	check()
	if n := healthLines(); n != 1 {
		t.Fatalf("at DEBUG: %d health lines, want 1", n)
	}
	changed := false
	for _, e := range logLines(t, logs.String()) {
		if e["msg"] == "log level changed" && e["level"] == "WARN" && e["to"] == "DEBUG" && e["actor"] == platformtest.Admin().Subject {
			changed = true
		}
	}
	if !changed {
		t.Fatalf("no WARN line naming the admin who changed the level:\n%s", logs.String())
	}
}

// A process without a SlowCall of its own (the dev stack) takes
// TRIALHUB_SLOW_CALL from the environment.
func TestProcessSlowCallFromTheEnvironment(t *testing.T) {
	t.Setenv("TRIALHUB_SLOW_CALL", "1ns") // every call is slow
	logs := &logbuf.Buffer{}
	env := platformtest.Start(t, notes.Service("notes"), platformtest.WithSQLite(),
		platformtest.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	res := &structpb.Struct{}
	if err := env.Client(t, platformtest.Admin()).CallUnary(context.Background(), notes.Spec(notes.CountNotesProcedure), &structpb.Struct{}, res); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range logLines(t, logs.String()) {
		if e["procedure"] == notes.CountNotesProcedure {
			found = true
			if e["level"] != "WARN" || e["slow"] != true {
				t.Errorf("CountNotes logged as %v, want WARN and slow", e)
			}
		}
	}
	if !found {
		t.Fatalf("no CountNotes line:\n%s", logs.String())
	}
}
