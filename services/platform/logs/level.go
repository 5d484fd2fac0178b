package logs

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// ParseLevel reads a level name as config and LevelHandler take it: debug, info,
// warn, error (any case), or slog's forms such as "INFO+2".
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("logs: level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// LevelHandler shows and changes the level of a running process:
//
//	GET  -> 200 {"level":"INFO"}
//	PUT  {"level":"debug"} (or the bare name as text/plain) -> 200 {"level":"DEBUG"}
//
// A body that is not a level gets 400 and leaves the level as it was; other
// methods get 405. The body is read up to 1 KiB.
//
// It changes what every logger of the process logs, so it must not be reachable
// by anyone who can reach the service: mount it on the service's mux behind a
// check of an ADMIN (or SERVICE) bearer token, at /admin/log-level, as the lead
// decides. Operators then change it without a restart or a signal.
func LevelHandler(level *slog.LevelVar) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<10))
			if err != nil {
				http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
				return
			}
			name := string(body)
			var req struct {
				Level string `json:"level"`
			}
			if strings.HasPrefix(strings.TrimSpace(name), "{") {
				if err := json.Unmarshal(body, &req); err != nil {
					http.Error(w, `want {"level":"debug|info|warn|error"}`, http.StatusBadRequest)
					return
				}
				name = req.Level
			}
			l, err := ParseLevel(name)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			level.Set(l)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"level": level.Level().String()})
	})
}
