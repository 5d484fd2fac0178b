package auth

import (
	"context"
	"slices"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
)

// Caller is who is calling: the verified claims of the request's access token.
// Handlers read it with CallerFrom; it is never taken from the request body.
type Caller struct {
	// Subject is the token's subject: a patient's subject_uuid, a staff account id,
	// or, for role SERVICE, the name of the calling service ("epro", "trial").
	Subject string
	// Role is the single role the token grants.
	Role authzv1.Role
	// Sites lists the site ids an INVESTIGATOR may act on (claim "sites"); empty
	// for other roles. Empty means no site, never every site.
	Sites []string
	// Trials lists the trial ids an INVESTIGATOR or ANALYST may act on (claim
	// "trials"); empty for other roles. Empty means no trial, never every trial.
	Trials []string
	// TokenID is the token's jti, for audit records.
	TokenID string
}

// CanAccessSite reports whether the caller may act on the site: investigators only
// on the sites their token lists, admins and services on all, everybody else
// (analysts included) on none. An empty siteID names no site and is always refused.
func (c Caller) CanAccessSite(siteID string) bool {
	switch {
	case siteID == "":
		return false
	case c.Role == authzv1.Role_ROLE_ADMIN, c.Role == authzv1.Role_ROLE_SERVICE:
		return true
	case c.Role == authzv1.Role_ROLE_INVESTIGATOR:
		return slices.Contains(c.Sites, siteID)
	default:
		return false
	}
}

// CanAccessTrial reports whether the caller may act on the trial: investigators and
// analysts only on the trials their token lists, admins and services on all,
// everybody else on none. An empty trialID names no trial and is always refused.
func (c Caller) CanAccessTrial(trialID string) bool {
	switch {
	case trialID == "":
		return false
	case c.Role == authzv1.Role_ROLE_ADMIN, c.Role == authzv1.Role_ROLE_SERVICE:
		return true
	case c.Role == authzv1.Role_ROLE_INVESTIGATOR, c.Role == authzv1.Role_ROLE_ANALYST:
		return slices.Contains(c.Trials, trialID)
	default:
		return false
	}
}

type callerKey struct{}

// WithCaller returns a context carrying the caller. The platform's authentication
// interceptor calls it; tests of handlers may too.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller of the current RPC. The second result is false when
// the call carried no valid token (a public method called anonymously).
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}
