package auth_test

import (
	"context"
	"fmt"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// The issuer rotates its signing key: tokens signed before keep verifying, new
// ones carry the new kid, and the published key set lists both.
func ExampleSigner_Rotate() {
	first, _ := auth.NewKey()
	signer := auth.NewSigner(first, "https://patient.trialhub.example")
	verifier := auth.NewVerifier(signer.Keys(), "https://patient.trialhub.example")
	investigator := auth.Caller{Subject: "inv-7", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{"site-1"}, Trials: []string{"trial-9"}}
	before, _, _ := signer.Sign(investigator, 15*time.Minute)

	next, _ := auth.NewKey()
	signer.Rotate(next)
	after, _, _ := signer.Sign(investigator, 15*time.Minute)

	for _, tok := range []string{before, after} {
		c, err := verifier.Verify(context.Background(), tok)
		fmt.Println(c.Subject, c.CanAccessSite("site-1"), c.CanAccessTrial("trial-9"), c.CanAccessTrial("trial-2"), err)
	}
	fmt.Println(len(signer.JWKS().Keys), "published keys")
	// Output:
	// inv-7 true true false <nil>
	// inv-7 true true false <nil>
	// 2 published keys
}
