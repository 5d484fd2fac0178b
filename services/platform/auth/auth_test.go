package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

func mustKey(t *testing.T) auth.Key {
	t.Helper()
	k, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerifyRoundTrip(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	verifier := auth.NewVerifier(auth.StaticKeys{signer.PublicKey()}, "iss")
	ctx := context.Background()

	tok, exp, err := signer.Sign(auth.Caller{Subject: "inv-7", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"s1", "s2"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expiry in %v, want about an hour", d)
	}
	c, err := verifier.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "inv-7" || c.Role != authzv1.Role_ROLE_INVESTIGATOR || !slices.Equal(c.Sites, []string{"s1", "s2"}) || c.TokenID == "" {
		t.Fatalf("caller %+v", c)
	}
	if !c.CanAccessSite("s2") || c.CanAccessSite("s3") {
		t.Fatal("investigator site scoping wrong")
	}
	if _, _, err := signer.Sign(auth.Caller{Subject: "x"}, time.Hour); err == nil {
		t.Fatal("signed a token without a role")
	}
	// Two tokens for the same caller differ (jti), so one can be revoked alone.
	tok2, _, _ := signer.Sign(auth.Caller{Subject: "inv-7", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"s1"}}, time.Hour)
	c2, _ := verifier.Verify(ctx, tok2)
	if c2.TokenID == c.TokenID {
		t.Fatal("token ids repeat")
	}
}

func TestVerifierRejectsOtherIssuersKeys(t *testing.T) {
	a := auth.NewSigner(mustKey(t), "iss")
	b := auth.NewSigner(mustKey(t), "iss")
	verifier := auth.NewVerifier(auth.StaticKeys{a.PublicKey()}, "iss")
	tok, _, _ := b.Sign(auth.Caller{Subject: "s", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	if _, err := verifier.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token from an unknown key: %v", err)
	}
}

func TestClockSkewLeeway(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	tok, _, _ := signer.Sign(auth.Caller{Subject: "s", Role: authzv1.Role_ROLE_ADMIN}, time.Minute)
	keys := auth.StaticKeys{signer.PublicKey()}
	justExpired := func() time.Time { return time.Now().Add(time.Minute + 10*time.Second) }
	if _, err := auth.NewVerifier(keys, "iss", auth.WithClock(justExpired)).Verify(context.Background(), tok); err != nil {
		t.Fatalf("10s past expiry within the default 30s leeway: %v", err)
	}
	strict := auth.NewVerifier(keys, "iss", auth.WithClock(justExpired), auth.WithLeeway(0))
	if _, err := strict.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired without leeway: %v", err)
	}
}

// jwksServer publishes a key set that the test can rotate, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    []auth.PublicKey
	fetches atomic.Int32
	down    atomic.Bool
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.fetches.Add(1)
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := auth.JWKS{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, k.ToJWK())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

func (s *jwksServer) publish(keys ...auth.PublicKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func TestRemoteKeysFollowRotationWithoutRestart(t *testing.T) {
	old, next := auth.NewSigner(mustKey(t), "iss"), auth.NewSigner(mustKey(t), "iss")
	js := &jwksServer{}
	js.publish(old.PublicKey())
	srv := httptest.NewServer(js)
	defer srv.Close()
	remote := auth.NewRemoteKeys(auth.FetchJWKS(srv.Client(), srv.URL), time.Hour, time.Nanosecond)
	// The verified-token cache is off, so every Verify below asks the key set.
	verifier := auth.NewVerifier(remote, "iss", auth.WithCache(0))
	ctx := context.Background()

	tokOld, _, _ := old.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	for range 3 {
		if _, err := verifier.Verify(ctx, tokOld); err != nil {
			t.Fatal(err)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one known key, want 1 (the key set caches)", n)
	}
	// The issuer rotates: publishes the new key beside the old one.
	js.publish(old.PublicKey(), next.PublicKey())
	tokNew, _, _ := next.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	if _, err := verifier.Verify(ctx, tokNew); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after one new kid, want 2", n)
	}
}

func TestRemoteKeysKnownKeyWhileTheIssuerIsDown(t *testing.T) {
	signer, stranger := auth.NewSigner(mustKey(t), "iss"), auth.NewSigner(mustKey(t), "iss")
	js := &jwksServer{}
	js.publish(signer.PublicKey())
	srv := httptest.NewServer(js)
	defer srv.Close()
	// maxAge and minRefresh of 1ns: the set is stale at every look-up, so each one
	// tries the issuer; the cache is off and every token distinct, so the answers
	// below come from the key set alone.
	remote := auth.NewRemoteKeys(auth.FetchJWKS(srv.Client(), srv.URL), time.Nanosecond, time.Nanosecond)
	verifier := auth.NewVerifier(remote, "iss", auth.WithCache(0))
	ctx := context.Background()
	sign := func(s *auth.Signer) string {
		tok, _, err := s.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := verifier.Verify(ctx, sign(signer)); err != nil {
		t.Fatal(err)
	}
	js.down.Store(true)
	for i := range 5 {
		if _, err := verifier.Verify(ctx, sign(signer)); err != nil {
			t.Fatalf("token %d of a known key while the issuer is down: %v", i, err)
		}
		if _, err := remote.PublicKey(ctx, signer.PublicKey().ID); err != nil {
			t.Fatalf("known kid while the issuer is down: %v", err)
		}
	}
	if _, err := verifier.Verify(ctx, sign(stranger)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a key never published, issuer down: %v", err)
	}
}

func TestRemoteKeysRateLimitUnknownKidRefreshes(t *testing.T) {
	js := &jwksServer{}
	signer := auth.NewSigner(mustKey(t), "iss")
	js.publish(signer.PublicKey())
	srv := httptest.NewServer(js)
	defer srv.Close()
	remote := auth.NewRemoteKeys(auth.FetchJWKS(srv.Client(), srv.URL), time.Hour, time.Hour)
	for i := range 50 {
		if _, err := remote.PublicKey(context.Background(), "made-up-"+string(rune('a'+i%26))); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 50 unknown kids, want 1 (refresh at most once per minRefresh)", n)
	}
}

func TestParseJWKSSkipsForeignKeys(t *testing.T) {
	k := mustKey(t).Public()
	doc := `{"keys":[{"kty":"RSA","kid":"r","n":"x","e":"AQAB"},` +
		`{"kty":"OKP","crv":"X25519","kid":"x","x":"` + k.ToJWK().X + `"},` +
		`{"kty":"OKP","crv":"Ed25519","kid":"` + k.ID + `","x":"` + k.ToJWK().X + `","use":"sig"}]}`
	keys, err := auth.ParseJWKS([]byte(doc))
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || !keys[0].Key.Equal(k.Key) {
		t.Fatalf("keys %v err %v", keys, err)
	}
	if _, err := auth.ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"short"}]}`)); err == nil {
		t.Fatal("a truncated key parsed")
	}
}

func TestThumbprintRFC8037Example(t *testing.T) {
	// RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
	x := "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	keys, err := auth.ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"` + x + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := auth.Thumbprint(keys[0].Key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestSignerTokensReuseUntilNearExpiry(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	ts := auth.NewSignerTokens(signer, auth.Caller{Subject: "epro", Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
	a, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ts.Token(context.Background())
	if a != b {
		t.Fatal("token re-minted while fresh")
	}
	c, err := auth.NewVerifier(auth.StaticKeys{signer.PublicKey()}, "iss").Verify(context.Background(), a)
	if err != nil || c.Role != authzv1.Role_ROLE_SERVICE || c.Subject != "epro" {
		t.Fatalf("%+v %v", c, err)
	}
	short := auth.NewSignerTokens(signer, auth.Caller{Subject: "epro", Role: authzv1.Role_ROLE_SERVICE}, time.Second)
	x, _ := short.Token(context.Background())
	time.Sleep(1100 * time.Millisecond) // the token's iat is in whole seconds
	y, _ := short.Token(context.Background())
	if x == y {
		t.Fatal("token not re-minted near expiry")
	}
}

func TestFileTokenRereadsRotatedSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(path, []byte("one\n"), 0o600)
	ft := auth.FileToken(path)
	if tok, _ := ft.Token(context.Background()); tok != "one" {
		t.Fatalf("token %q", tok)
	}
	_ = os.WriteFile(path, []byte("two"), 0o600)
	if tok, _ := ft.Token(context.Background()); tok != "two" {
		t.Fatalf("rotated token %q", tok)
	}
}

// countingKeys is a key source whose key can be withdrawn, counting look-ups.
type countingKeys struct {
	mu        sync.Mutex
	key       auth.PublicKey
	withdrawn bool
	lookups   int
}

func (k *countingKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	if k.withdrawn || kid != k.key.ID {
		return nil, errors.New("unknown kid")
	}
	return k.key.Key, nil
}

func TestVerifiedTokensAreCachedWithinTheirLifeAndAMinute(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	keys := &countingKeys{key: signer.PublicKey()}
	now := time.Now()
	clock := func() time.Time { return now }
	verifier := auth.NewVerifier(keys, "iss", auth.WithClock(clock), auth.WithLeeway(0))
	tok, _, _ := signer.Sign(auth.Caller{Subject: "inv", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"s1"}}, 10*time.Minute)
	ctx := context.Background()

	for range 100 {
		c, err := verifier.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		c.Sites[0] = "tampered" // a handler scribbling on its copy
	}
	if keys.lookups != 1 {
		t.Fatalf("%d key look-ups for one token verified 100 times, want 1", keys.lookups)
	}
	if c, _ := verifier.Verify(ctx, tok); c.Sites[0] != "s1" {
		t.Fatalf("cached caller changed by a handler: %v", c.Sites)
	}
	// A withdrawn key stops being accepted within a minute, cache or not.
	keys.mu.Lock()
	keys.withdrawn = true
	keys.mu.Unlock()
	now = now.Add(61 * time.Second)
	if _, err := verifier.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a withdrawn key after 61s: %v", err)
	}
	// An expired token is refused even when it was cached.
	keys.mu.Lock()
	keys.withdrawn = false
	keys.mu.Unlock()
	if _, err := verifier.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute)
	if _, err := verifier.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired cached token: %v", err)
	}
	// WithCache(0) turns it off.
	off := auth.NewVerifier(keys, "iss", auth.WithCache(0))
	fresh, _, _ := signer.Sign(auth.Caller{Subject: "x", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	before := keys.lookups
	for range 3 {
		if _, err := off.Verify(ctx, fresh); err != nil {
			t.Fatal(err)
		}
	}
	if keys.lookups-before != 3 {
		t.Fatalf("uncached verifier looked up keys %d times for 3 calls", keys.lookups-before)
	}
}

func TestFetchJWKSWithoutAClientUsesItsOwn(t *testing.T) {
	k := mustKey(t).Public()
	js := &jwksServer{}
	js.publish(k)
	srv := httptest.NewServer(js)
	defer srv.Close()
	keys, err := auth.FetchJWKS(nil, srv.URL)(context.Background())
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID {
		t.Fatalf("keys %v err %v", keys, err)
	}
	js.down.Store(true)
	if _, err := auth.FetchJWKS(nil, srv.URL)(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("issuer down: %v, want an error naming the status", err)
	}
}
