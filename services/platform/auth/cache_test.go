package auth_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

func TestFullTokenCacheDropsTheLeastRecentlyUsedToken(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	keys := &countingKeys{key: signer.PublicKey()}
	verifier := auth.NewVerifier(keys, "iss", auth.WithCache(2))
	ctx := context.Background()
	tokens := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		tok, _, err := signer.Sign(auth.Caller{Subject: name, Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
	}
	verify := func(name string) {
		t.Helper()
		if _, err := verifier.Verify(ctx, tokens[name]); err != nil {
			t.Fatal(err)
		}
	}
	// a and b fill the cache, a is used again, c pushes out b (least recently used).
	for _, name := range []string{"a", "b", "a", "c"} {
		verify(name)
	}
	if keys.lookups != 3 {
		t.Fatalf("%d key look-ups for 3 tokens, want 3", keys.lookups)
	}
	verify("a")
	verify("c")
	if keys.lookups != 3 {
		t.Fatalf("%d key look-ups after a and c again, want still 3: a full cache dropped live recent tokens", keys.lookups)
	}
	verify("b")
	if keys.lookups != 4 {
		t.Fatalf("%d key look-ups after b again, want 4 (b was evicted)", keys.lookups)
	}
}

func TestVerifierWithoutCacheStartsNoCacheGoroutine(t *testing.T) {
	// Each cache owns a cleanup goroutine that never ends; a Verifier built with
	// the cache off, or with another size, must not leave the default one behind.
	before := runtime.NumGoroutine()
	for range 50 {
		auth.NewVerifier(auth.StaticKeys{}, "iss", auth.WithCache(0))
	}
	if grown := runtime.NumGoroutine() - before; grown >= 50 {
		t.Fatalf("50 verifiers without a cache left %d goroutines", grown)
	}
}
