package platform_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
)

// A service runs on its own as services/<name>/cmd/<name> does: configured by
// flags and environment, verifying tokens with the issuer's published keys,
// answering until its context ends, then stopping cleanly.
func TestRunServesOneServiceAlone(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "trialhub")
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(signer.JWKS())
	}))
	defer issuer.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"TRIALHUB_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "notes.db"),
		"TRIALHUB_JWKS_URL":     issuer.URL,
		"TRIALHUB_DRAIN_DELAY":  "0s",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- platform.Run(ctx, notes.Service("alone"), []string{"--addr", addr, "--log-level", "error"}, lookupFrom(env))
	}()

	token, _, err := signer.Sign(platformtest.Admin(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dep := client.Service("notes", "http://"+addr)
	dep.Breaker.Disabled = true
	c := client.New(dep, client.WithTokens(auth.StaticToken(token)))
	res := &structpb.Struct{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = c.CallUnary(ctx, notes.Spec(notes.CountNotesProcedure), &structpb.Struct{}, res)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the process is still migrating
	}
	if err != nil {
		t.Fatalf("CountNotes on the standalone process: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after its context ended, want nil", err)
	}
}

func mustKey(t *testing.T) auth.Key {
	t.Helper()
	k, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The log level of a running process follows SIGUSR1 (more verbose) and SIGUSR2
// (back to the configured level), and an ADMIN reads it at /admin/log-level.
func TestRunLogLevelFollowsSignals(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "trialhub")
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(signer.JWKS())
	}))
	defer issuer.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"TRIALHUB_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "notes.db"),
		"TRIALHUB_JWKS_URL":     issuer.URL,
		"TRIALHUB_DRAIN_DELAY":  "0s",
		"TRIALHUB_LOG_LEVEL":    "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- platform.Run(ctx, notes.Service("alone"), []string{"--addr", addr}, lookupFrom(env)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	token, _, err := signer.Sign(platformtest.Admin(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	levelNow := func() string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+platform.LogLevelPath, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(res.Body).Decode(&out)
		return out["level"]
	}
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for got := levelNow(); got != want; got = levelNow() {
			if time.Now().After(deadline) {
				t.Fatalf("log level %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("WARN")
	for _, want := range []string{"INFO", "DEBUG"} {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		wait(want)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	wait("WARN")
}
