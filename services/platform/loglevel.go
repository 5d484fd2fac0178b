package platform

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/logs"
)

// LogLevelPath is where every process serves its log level on its own port: GET
// shows it, PUT {"level":"debug"} changes it at once, for every logger of the
// process, until the next change or restart. Only an ADMIN access token, checked
// by the process's verifier, may call it:
//
//	curl -s -X PUT localhost:8080/admin/log-level -H "Authorization: Bearer $ADMIN" -d '{"level":"debug"}'
//
// Without a valid token it answers 401 (code unauthenticated), with another role
// 403 (code permission_denied), in Connect's JSON error shape.
const LogLevelPath = "/admin/log-level"

// logLevelHandler is logs.LevelHandler behind an ADMIN check; a change is logged
// at WARN with the admin's id, so it shows whatever the new level.
func logLevelHandler(verifier TokenVerifier, level *slog.LevelVar, log *slog.Logger) http.Handler {
	inner := logs.LevelHandler(level)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, status, msg := adminCaller(r, verifier)
		if status != http.StatusOK {
			code := "unauthenticated"
			if status == http.StatusForbidden {
				code = "permission_denied"
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
			return
		}
		before := level.Level()
		inner.ServeHTTP(w, r)
		if after := level.Level(); after != before {
			log.WarnContext(r.Context(), "log level changed", "from", before.String(), "to", after.String(), "actor", caller.Subject)
		}
	})
}

// adminCaller checks the request's bearer token: the caller and 200, or 401 or
// 403 with the reason.
func adminCaller(r *http.Request, verifier TokenVerifier) (auth.Caller, int, string) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return auth.Caller{}, http.StatusUnauthorized, "missing bearer token"
	}
	if verifier == nil {
		return auth.Caller{}, http.StatusUnauthorized, "invalid bearer token"
	}
	caller, err := verifier.Verify(r.Context(), strings.TrimSpace(token))
	if err != nil {
		return auth.Caller{}, http.StatusUnauthorized, "invalid bearer token"
	}
	if caller.Role != authzv1.Role_ROLE_ADMIN {
		return caller, http.StatusForbidden, "role " + auth.RoleName(caller.Role) + " may not change the log level (allowed: ADMIN)"
	}
	return caller, http.StatusOK, ""
}
