package auth_test

import (
	"context"
	"slices"
	"testing"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

func TestScopesGrantOnlyWhatTheyName(t *testing.T) {
	inv := auth.Caller{Subject: "inv", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"s1"}, Trials: []string{"t1"}}
	for _, tc := range []struct {
		name        string
		caller      auth.Caller
		site, trial string
		want        bool
	}{
		{"investigator, own site and trial", inv, "s1", "t1", true},
		{"investigator, other site and trial", inv, "s2", "t2", false},
		{"investigator, empty ids", inv, "", "", false},
		{"investigator with empty scopes", auth.Caller{Subject: "i", Role: authzv1.Role_ROLE_INVESTIGATOR}, "s1", "t1", false},
		{"investigator scoped to an empty id", auth.Caller{Subject: "i", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{""}, Trials: []string{""}}, "", "", false},
		{"admin", auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, "s9", "t9", true},
		{"admin, empty ids", auth.Caller{Subject: "a", Role: authzv1.Role_ROLE_ADMIN}, "", "", false},
		{"service", auth.Caller{Subject: "epro", Role: authzv1.Role_ROLE_SERVICE}, "s9", "t9", true},
		{"patient, even with scopes set", auth.Caller{Subject: "p", Role: authzv1.Role_ROLE_PATIENT, Sites: []string{"s1"}, Trials: []string{"t1"}}, "s1", "t1", false},
		{"anonymous", auth.Caller{}, "s1", "t1", false},
	} {
		if got := tc.caller.CanAccessSite(tc.site); got != tc.want {
			t.Errorf("%s: CanAccessSite(%q) = %v, want %v", tc.name, tc.site, got, tc.want)
		}
		if got := tc.caller.CanAccessTrial(tc.trial); got != tc.want {
			t.Errorf("%s: CanAccessTrial(%q) = %v, want %v", tc.name, tc.trial, got, tc.want)
		}
	}
	// An analyst is scoped to trials only: de-identified data, no site's records.
	analyst := auth.Caller{Subject: "an", Role: authzv1.Role_ROLE_ANALYST, Sites: []string{"s1"}, Trials: []string{"t1"}}
	if !analyst.CanAccessTrial("t1") || analyst.CanAccessTrial("t2") || analyst.CanAccessSite("s1") {
		t.Error("analyst: want trial t1 only, no sites")
	}
}

func TestTrialScopesTravelInTheToken(t *testing.T) {
	signer := auth.NewSigner(mustKey(t), "iss")
	verifier := auth.NewVerifier(signer.Keys(), "iss")
	ctx := context.Background()
	for _, tc := range []struct {
		in                    auth.Caller
		wantSites, wantTrials []string
	}{
		{auth.Caller{Subject: "inv", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"s1"}, Trials: []string{"t1", "t2"}}, []string{"s1"}, []string{"t1", "t2"}},
		// Scopes a role does not have are dropped on verification.
		{auth.Caller{Subject: "an", Role: authzv1.Role_ROLE_ANALYST, Sites: []string{"s1"}, Trials: []string{"t1"}}, nil, []string{"t1"}},
		{auth.Caller{Subject: "p", Role: authzv1.Role_ROLE_PATIENT, Sites: []string{"s1"}, Trials: []string{"t1"}}, nil, nil},
	} {
		tok, _, err := signer.Sign(tc.in, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // verified, then from the cache
			c, err := verifier.Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Sites, tc.wantSites) || !slices.Equal(c.Trials, tc.wantTrials) {
				t.Fatalf("%s: sites %v trials %v, want %v %v", tc.in.Subject, c.Sites, c.Trials, tc.wantSites, tc.wantTrials)
			}
			if len(c.Trials) > 0 {
				c.Trials[0] = "tampered" // a handler scribbling on its copy
			}
		}
	}
}
