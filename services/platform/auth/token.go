// Package auth issues and verifies TrialHub access tokens: short-lived JWTs typed
// at+jwt (RFC 9068), signed with Ed25519 (EdDSA), published as a JWKS with a key id
// (kid, the RFC 7638 thumbprint) per key so keys rotate without restarts and
// without logging anyone out (Signer.Rotate; verifiers follow with RemoteKeys).
// The patient service signs; every other service only verifies. No symmetric
// secret is ever shared between services.
package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// Audience is the audience of every TrialHub access token: the TrialHub API.
const Audience = "trialhub-api"

// TokenType is the JOSE typ header of every TrialHub access token (RFC 9068). The
// Verifier accepts no other, so a token of another kind signed with the same key
// (a refresh, an invitation, a reset token) can never pass as an access token.
const TokenType = "at+jwt"

// ErrInvalidToken is returned by Verifier.Verify for any token it rejects. The
// reason is wrapped for local logs; callers should not tell clients which it was.
var ErrInvalidToken = errors.New("invalid token")

// Claims are the JWT claims of a TrialHub access token.
type Claims struct {
	jwt.RegisteredClaims
	// Role is the authz role name without its prefix: "PATIENT", "ADMIN", ...
	Role string `json:"role"`
	// Sites are the site ids an investigator is scoped to.
	Sites []string `json:"sites,omitempty"`
	// Trials are the trial ids an investigator or analyst is scoped to.
	Trials []string `json:"trials,omitempty"`
}

// RoleName is the claim form of a role: ROLE_ANALYST becomes "ANALYST".
func RoleName(r authzv1.Role) string {
	return strings.TrimPrefix(r.String(), "ROLE_")
}

// ParseRole is the inverse of RoleName; it accepts any letter case.
func ParseRole(name string) (authzv1.Role, error) {
	v, ok := authzv1.Role_value["ROLE_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown role %q", name)
	}
	return authzv1.Role(v), nil
}
