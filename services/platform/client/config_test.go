package client_test

import (
	"strings"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform/client"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestFromEnvOverridesPerDependency(t *testing.T) {
	env := map[string]string{
		"TRIALHUB_PUSH_VENDOR_URL":                   "https://push.example",
		"TRIALHUB_PUSH_VENDOR_TIMEOUT":               "750ms",
		"TRIALHUB_PUSH_VENDOR_MAX_ATTEMPTS":          "2",
		"TRIALHUB_PUSH_VENDOR_BREAKER_OPEN_FOR":      "30s",
		"TRIALHUB_PUSH_VENDOR_BREAKER_FAILURE_RATIO": "0.25",
		"TRIALHUB_TRIAL_TIMEOUT":                     "9s", // another dependency's
	}
	dep, err := client.FromEnv(client.Vendor("push-vendor", "http://default"), lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if dep.BaseURL != "https://push.example" || dep.Timeout != 750*time.Millisecond || dep.MaxAttempts != 2 ||
		dep.Breaker.OpenFor != 30*time.Second || dep.Breaker.FailureRatio != 0.25 {
		t.Fatalf("dep %+v", dep)
	}
	// Unset values keep the defaults of the constructor.
	trial, err := client.FromEnv(client.Service("patient", "http://patient:8080"), lookup(env))
	if err != nil || trial.Timeout != 2000*time.Millisecond || trial.BaseURL != "http://patient:8080" {
		t.Fatalf("patient dep %+v %v", trial, err)
	}
	if v := client.Vendor("x", ""); v.Timeout != 500*time.Millisecond {
		t.Fatalf("vendor default timeout %v", v.Timeout)
	}
}

func TestFromEnvRejectsBadValues(t *testing.T) {
	env := map[string]string{
		"TRIALHUB_TRIAL_TIMEOUT":      "soon",
		"TRIALHUB_TRIAL_MAX_ATTEMPTS": "0",
		"TRIALHUB_TRIAL_RETRY_BUDGET": "3",
	}
	_, err := client.FromEnv(client.Service("trial", "http://trial"), lookup(env))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"TRIALHUB_TRIAL_TIMEOUT", "TRIALHUB_TRIAL_MAX_ATTEMPTS", "TRIALHUB_TRIAL_RETRY_BUDGET"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestFromEnvProtocol(t *testing.T) {
	for v, want := range map[string]client.Protocol{
		"grpc":    client.ProtocolGRPC,
		"connect": client.ProtocolConnect,
		"grpcweb": client.ProtocolGRPCWeb,
	} {
		dep, err := client.FromEnv(client.Service("trial", "http://trial"), lookup(map[string]string{"TRIALHUB_TRIAL_PROTOCOL": v}))
		if err != nil || dep.Protocol != want {
			t.Errorf("PROTOCOL=%s: %q, %v; want %q", v, dep.Protocol, err, want)
		}
	}
	for _, v := range []string{"http", "GRPC", "grpc-web", "json"} {
		_, err := client.FromEnv(client.Service("trial", "http://trial"), lookup(map[string]string{"TRIALHUB_TRIAL_PROTOCOL": v}))
		if err == nil {
			t.Errorf("PROTOCOL=%s accepted", v)
			continue
		}
		want := `TRIALHUB_TRIAL_PROTOCOL="` + v + `": unknown protocol "` + v + `": want grpc, connect or grpcweb`
		if !strings.Contains(err.Error(), want) {
			t.Errorf("PROTOCOL=%s: error %q, want it to say %q", v, err, want)
		}
	}
}

func TestFromEnvBackoffAndBreaker(t *testing.T) {
	env := map[string]string{
		"TRIALHUB_TRIAL_BACKOFF_BASE":   "10ms",
		"TRIALHUB_TRIAL_BACKOFF_MAX":    "2s",
		"TRIALHUB_TRIAL_BREAKER_WINDOW": "1m",
		"TRIALHUB_TRIAL_BREAKER_PROBES": "3",
	}
	dep, err := client.FromEnv(client.Service("trial", "http://trial"), lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if dep.BackoffBase != 10*time.Millisecond || dep.BackoffMax != 2*time.Second ||
		dep.Breaker.Window != time.Minute || dep.Breaker.Probes != 3 {
		t.Fatalf("dep %+v", dep)
	}
	bad := map[string]string{"TRIALHUB_TRIAL_BREAKER_PROBES": "0", "TRIALHUB_TRIAL_BACKOFF_MAX": "-1s"}
	_, err = client.FromEnv(client.Service("trial", "http://trial"), lookup(bad))
	for _, want := range []string{"TRIALHUB_TRIAL_BREAKER_PROBES", "TRIALHUB_TRIAL_BACKOFF_MAX"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestNewRefusesAnUnknownProtocol(t *testing.T) {
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.Contains(msg, `dependency trial: unknown protocol "http"`) {
			t.Fatalf("New with protocol http: recovered %v, want a panic naming the dependency and protocol", r)
		}
	}()
	dep := client.Service("trial", "http://trial")
	dep.Protocol = "http"
	client.New(dep)
}
