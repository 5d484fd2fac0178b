package platform_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
