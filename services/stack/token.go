package stack

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
)

const roleAdmin = authzv1.Role_ROLE_ADMIN

// TokenRequest describes a dev token.
type TokenRequest struct {
	// Data is the data folder whose patient database holds the signing keys.
	Data string
	// Role is the role name: patient, investigator, analyst, admin or service.
	Role string
	// Subject is the token's subject; a fresh one is made when empty (a random
	// subject_uuid for patients, "dev-<role>" otherwise).
	Subject string
	// Sites are an investigator's site scopes; required for investigators.
	Sites []string
	// Trials are an investigator's or analyst's trial scopes; an empty scope
	// grants nothing.
	Trials []string
	// TTL is the token's lifetime. Default 12 hours.
	TTL time.Duration
}

// Token signs a token with the signing keys of the data folder's patient
// database, so the running stack accepts it (start the stack once first).
func Token(req TokenRequest) (string, error) {
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		return "", fmt.Errorf("--role: %w (want patient, investigator, analyst, admin or service)", err)
	}
	if role == authzv1.Role_ROLE_INVESTIGATOR && len(req.Sites) == 0 {
		return "", fmt.Errorf("--site: an investigator token needs at least one site")
	}
	if role != authzv1.Role_ROLE_INVESTIGATOR && len(req.Sites) > 0 {
		return "", fmt.Errorf("--site: only investigator tokens carry sites")
	}
	subject := req.Subject
	if subject == "" {
		if role == authzv1.Role_ROLE_PATIENT {
			subject = uuid.NewString()
		} else {
			subject = "dev-" + auth.RoleName(role)
		}
	}
	if req.TTL == 0 {
		req.TTL = 12 * time.Hour
	}
	if len(req.Trials) > 0 && role != authzv1.Role_ROLE_INVESTIGATOR && role != authzv1.Role_ROLE_ANALYST {
		return "", fmt.Errorf("--trial: only investigator and analyst tokens carry trials")
	}
	keys, closeDB, err := patientKeys(context.Background(), req.Data)
	if err != nil {
		return "", err
	}
	defer closeDB()
	token, _, _, err := keys.Sign(auth.Caller{Subject: subject, Role: role, Sites: req.Sites, Trials: req.Trials}, req.TTL)
	return token, err
}
