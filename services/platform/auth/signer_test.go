package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAccessTokensAreTypedAndOnlyTypedTokensPass(t *testing.T) {
	key := mustKey(t)
	signer := auth.NewSigner(key, "iss")
	verifier := auth.NewVerifier(auth.StaticKeys{signer.PublicKey()}, "iss")
	ctx := context.Background()
	tok, _, err := signer.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if h := header(t, tok); h["typ"] != "at+jwt" || h["kid"] != key.ID || h["alg"] != "EdDSA" {
		t.Fatalf("header %v, want typ at+jwt, the key's kid, EdDSA", h)
	}
	if _, err := verifier.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// Tokens that are right in every claim, signed with the same key, but not
	// typed as access tokens: a refresh, an invitation, a plain JWT, no typ.
	now := time.Now()
	claims := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "iss", Subject: "a", Audience: jwt.ClaimStrings{auth.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
		},
		Role: "ADMIN",
	}
	signAs := func(typ any) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		tk.Header["kid"] = key.ID
		if typ == nil {
			delete(tk.Header, "typ")
		} else {
			tk.Header["typ"] = typ
		}
		s, err := tk.SignedString(key.Private)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, typ := range []any{nil, "JWT", "rt+jwt", "invite+jwt", "at+jwt+x", 1} {
		if _, err := verifier.Verify(ctx, signAs(typ)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("typ %v: %v, want ErrInvalidToken", typ, err)
		}
	}
	// RFC 9068 section 2.1 also allows the full media type, in any letter case.
	for _, typ := range []string{auth.TokenType, "application/at+jwt", "AT+JWT"} {
		if _, err := verifier.Verify(ctx, signAs(typ)); err != nil {
			t.Errorf("typ %q: %v", typ, err)
		}
	}
}

func TestSignerRotatesWithoutLoggingAnyoneOut(t *testing.T) {
	first, second, third := mustKey(t), mustKey(t), mustKey(t)
	signer := auth.NewSigner(first, "iss")
	verifier := auth.NewVerifier(signer.Keys(), "iss", auth.WithCache(0))
	ctx := context.Background()
	sign := func() string {
		tok, _, err := signer.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	kids := func() []string {
		var ids []string
		for _, k := range signer.JWKS().Keys {
			ids = append(ids, k.Kid)
		}
		return ids
	}
	before := sign()
	signer.Rotate(second)
	after := sign()
	if got := header(t, after)["kid"]; got != second.ID {
		t.Fatalf("token after Rotate has kid %v, want the new key's %s", got, second.ID)
	}
	if signer.PublicKey().ID != second.ID {
		t.Fatalf("PublicKey is %s after Rotate, want the new key", signer.PublicKey().ID)
	}
	if got, want := kids(), []string{second.ID, first.ID}; !slices.Equal(got, want) {
		t.Fatalf("JWKS kids %v, want the current key then the previous one %v", got, want)
	}
	for name, tok := range map[string]string{"before rotation": before, "after rotation": after} {
		if _, err := verifier.Verify(ctx, tok); err != nil {
			t.Errorf("token %s: %v", name, err)
		}
	}
	// A verifier that fetches the published set accepts both too.
	keys, err := auth.ParseJWKS(mustMarshal(t, signer.JWKS()))
	if err != nil {
		t.Fatal(err)
	}
	remote := auth.NewVerifier(auth.StaticKeys(keys), "iss")
	for _, tok := range []string{before, after} {
		if _, err := remote.Verify(ctx, tok); err != nil {
			t.Errorf("published set: %v", err)
		}
	}
	// Previous keys are kept two deep: a third rotation retires the first key.
	signer.Rotate(third)
	if got, want := kids(), []string{third.ID, second.ID, first.ID}; !slices.Equal(got, want) {
		t.Fatalf("JWKS kids %v, want %v", got, want)
	}
	signer.Rotate(mustKey(t))
	if slices.Contains(kids(), first.ID) {
		t.Fatalf("JWKS %v still lists a key rotated out three times", kids())
	}
	if _, err := verifier.Verify(ctx, before); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a retired key: %v", err)
	}
}

func TestSignerPublishesPreviousKeysItWasGiven(t *testing.T) {
	current, previous := mustKey(t), mustKey(t)
	old := auth.NewSigner(previous, "iss")
	tok, _, _ := old.Sign(auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, time.Hour)
	// The process restarts with a new key, still publishing the old one's public half.
	signer := auth.NewSigner(current, "iss", previous.Public())
	if got := signer.JWKS().Keys; len(got) != 2 || got[0].Kid != current.ID || got[1].Kid != previous.ID {
		t.Fatalf("JWKS %v, want current then previous", got)
	}
	if _, err := auth.NewVerifier(signer.Keys(), "iss").Verify(context.Background(), tok); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
