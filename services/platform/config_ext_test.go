package platform_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/client"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trial.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The file sets, the environment overrides the file, a flag overrides both; the
// dependency blocks keep the old design's shape (milliseconds).
func TestLoadConfigLayers(t *testing.T) {
	file := writeFile(t, `
Addr: ":9001"
DatabaseUrl: postgres://file@db/trial
JwksUrl: http://patient:8080/.well-known/jwks.json
CorsOrigins: ["https://app.example"]
LogLevel: warn
PatientRpc: {Url: "http://patient:8080", Timeout: 1500, MaxAttempts: 2}
NotificationRpc:
  Timeout: 500
  BreakerOpenFor: 7000
`)
	env := map[string]string{
		"TRIALHUB_CONFIG":          file,
		"TRIALHUB_DATABASE_URL":    "postgres://env@db/trial",
		"TRIALHUB_PATIENT_TIMEOUT": "900ms",
		"TRIALHUB_LOG_LEVEL":       "debug",
		"TRIALHUB_SHED_MIN_LIMIT":  "16",
	}
	cfg, err := platform.LoadConfig("trial", []string{"--log-level", "error"}, lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9001" || cfg.DatabaseURL != "postgres://env@db/trial" || cfg.LogLevel != "error" ||
		cfg.JWKSURL != "http://patient:8080/.well-known/jwks.json" || len(cfg.CORSOrigins) != 1 || cfg.Issuer != "trialhub" ||
		cfg.ShedMinLimit != 16 {
		t.Fatalf("config = %+v", cfg)
	}
	patient, err := cfg.Dependency(client.Service("patient", ""), lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if patient.BaseURL != "http://patient:8080" || patient.Timeout != 900*time.Millisecond || patient.MaxAttempts != 2 {
		t.Errorf("patient dependency = %+v, want the file's URL and attempts, the environment's timeout", patient)
	}
	env["TRIALHUB_NOTIFICATION_URL"] = "http://notification:8080"
	notification, err := cfg.Dependency(client.Service("notification", ""), lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if notification.Timeout != 500*time.Millisecond || notification.Breaker.OpenFor != 7*time.Second {
		t.Errorf("notification dependency = %+v, want 500 ms and 7 s from the file", notification)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := platform.LoadConfig("trial", nil, lookupFrom(map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.LogLevel != "info" || cfg.Issuer != "trialhub" || cfg.DrainDelay != 5*time.Second {
		t.Fatalf("defaults = %+v", cfg)
	}
	// A declared dependency without a URL anywhere is named.
	_, err = cfg.Dependency(client.Service("patient", ""), lookupFrom(nil))
	if err == nil || !strings.Contains(err.Error(), "TRIALHUB_PATIENT_URL") {
		t.Fatalf("dependency without URL: %v", err)
	}
}

func TestLoadConfigRefusesMistakes(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"no database":           {want: "TRIALHUB_DATABASE_URL"},
		"typo at the top":       {file: "DatabaseURL: sqlite:x.db\n", want: "DatabaseURL"},
		"typo in a block":       {file: "DatabaseUrl: sqlite:x.db\nPatientRpc: {Timout: 3}\n", want: "Timout"},
		"not a block":           {file: "DatabaseUrl: sqlite:x.db\nPatient: {Timeout: 3}\n", want: `"Patient"`},
		"bad log level":         {env: map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db", "TRIALHUB_LOG_LEVEL": "loud"}, want: "log level"},
		"bad postgres driver":   {env: map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db", "TRIALHUB_POSTGRES_DRIVER": "odbc"}, want: "postgres driver"},
		"missing file":          {env: map[string]string{"TRIALHUB_CONFIG": "/nonexistent/trial.yaml"}, want: "configuration file"},
		"bad dependency in env": {env: map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db"}, want: ""},
	} {
		t.Run(name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			if tc.file != "" {
				env["TRIALHUB_CONFIG"] = writeFile(t, tc.file)
			}
			_, err := platform.LoadConfig("trial", nil, lookupFrom(env))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid configuration refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// The slow-call threshold defaults to 500 ms and is read from the file and,
// over it, from TRIALHUB_SLOW_CALL.
func TestLoadConfigSlowCall(t *testing.T) {
	base := map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db"}
	cfg, err := platform.LoadConfig("trial", nil, lookupFrom(base))
	if err != nil || cfg.SlowCall != 500*time.Millisecond {
		t.Fatalf("default: %v %v, want 500ms", cfg.SlowCall, err)
	}
	file := writeFile(t, "SlowCall: 2s\n")
	cfg, err = platform.LoadConfig("trial", []string{"--config", file}, lookupFrom(base))
	if err != nil || cfg.SlowCall != 2*time.Second {
		t.Fatalf("file: %v %v, want 2s", cfg.SlowCall, err)
	}
	env := map[string]string{"TRIALHUB_DATABASE_URL": "sqlite:x.db", "TRIALHUB_SLOW_CALL": "250ms"}
	cfg, err = platform.LoadConfig("trial", []string{"--config", file}, lookupFrom(env))
	if err != nil || cfg.SlowCall != 250*time.Millisecond {
		t.Fatalf("env: %v %v, want 250ms", cfg.SlowCall, err)
	}
	env["TRIALHUB_SLOW_CALL"] = "soon"
	if _, err := platform.LoadConfig("trial", nil, lookupFrom(env)); err == nil || !strings.Contains(err.Error(), "SlowCall") {
		t.Fatalf("bad duration: %v, want an error naming SlowCall", err)
	}
}
