// Package stack is the TrialHub development stack: every service in one process on
// one port, each on its own SQLite file under a data folder, with a development
// signing key kept in that folder. The `trialhub` command runs it.
package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/notification"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/trial"
)

// Issuer is the iss claim of the tokens the patient service signs.
const Issuer = "trialhub"

// JWKSPath is where the patient service publishes its public signing keys, so that
// other processes (a service run on its own, a script) can verify its tokens.
const JWKSPath = "/.well-known/jwks.json"

// FakeVendorPath is where the stack serves the fake SMS and push vendor; its
// inbox shows the codes the patient service sends.
const FakeVendorPath = "/fakevendor"

// Services is the table of services the dev stack mounts, in order: each one's
// database is data/<name>.db, its handlers share the one port, its workers run in
// the process, and its seed runs once all of them serve.
func Services() []platform.Service {
	return []platform.Service{
		patient.Platform(), // first: it issues every token
		withDemoScopes(trial.Platform()),
		epro.Platform(),
		notification.Platform(), // its push vendor: the stack's fake vendor at FakeVendorPath
	}
}

// Config is what `trialhub dev` runs with.
type Config struct {
	// Addr is the listen address, host:port. Default "127.0.0.1:8080": the stack
	// prints an admin token, so listening beyond this machine is opt-in.
	Addr string
	// Data is the folder for the databases and the patient master key. Default "data".
	Data string
	// Web is the folder of the built browser app, served at /. When it does not
	// exist, / says how to build it. Default "web-client/dist".
	Web string
	// Services replaces the table the stack mounts (tests mount their own).
	// Default Services().
	Services []platform.Service
	// Log receives the server's logs. Default JSON on stderr.
	Log *slog.Logger
	// Out receives the start-up banner for a newcomer. Default io.Discard.
	Out io.Writer
	// Ready, when set, is called with the bound address once the stack serves and
	// the demo data is seeded.
	Ready func(addr string)
}

// DSN returns the SQLite DSN of a service's database in the data folder.
func (c Config) DSN(service string) string {
	return "sqlite:" + filepath.Join(c.Data, service+".db")
}

// Dev runs the stack until ctx is done.
func Dev(ctx context.Context, cfg Config) error {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.Data == "" {
		cfg.Data = "data"
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Web == "" {
		cfg.Web = filepath.Join("web-client", "dist")
	}
	if cfg.Services == nil {
		cfg.Services = Services()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	self := "http://" + ln.Addr().String()
	// The patient service is the issuer: its signing keys verify every call, sign
	// each service's SERVICE token and the seeds' tokens.
	keys := patient.NewKeys()
	secrets, secretSpec, err := serviceSecrets(cfg.Services)
	if err != nil {
		ln.Close()
		return err
	}
	env, err := patientEnv(cfg.Data, self, secretSpec)
	if err != nil {
		ln.Close()
		return err
	}
	for i, svc := range cfg.Services {
		switch {
		case svc.Name == patient.Name:
			cfg.Services[i] = patient.Platform(patient.WithKeys(keys), patient.WithEnv(env))
		case svc.Name == notification.Name && os.Getenv("TRIALHUB_PUSH_VENDOR_URL") == "":
			cfg.Services[i] = notification.Platform(notification.WithPushURL(self + FakeVendorPath))
		}
	}
	vendor := fakevendor.New()
	defer vendor.Close()
	var seeded strings.Builder // what the seeds print goes into the banner
	p := platform.Process{
		Name:     "trialhub",
		Services: cfg.Services,
		DSN:      cfg.DSN,
		Verifier: auth.NewVerifier(keys, Issuer),
		Log:      cfg.Log,
		// Each service calls the others as itself, with a SERVICE token.
		// Every other service gets its SERVICE token as it would alone: by the
		// client-credentials exchange with the patient service, over the network.
		Tokens: func(service string) auth.TokenSource {
			if service == patient.Name {
				return keys.TokenSource(service)
			}
			return platform.NewServiceTokens(client.Service(patient.Name, self), service, auth.StaticToken(secrets[service]))
		},
		// Calls between services go over the network to the stack's own port,
		// through the same client kit (timeouts, retries, breakers) and the whole
		// server chain as in production; TRIALHUB_<NAME>_* still tunes each.
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			if dep.BaseURL == "" {
				dep.BaseURL = self
			}
			return client.FromEnv(dep, os.LookupEnv)
		},
		ServerOptions: []platform.Option{
			// The dev stack serves the browser app and local tools from any origin.
			platform.WithCORSOrigins("*"),
			// Nothing balances load in front of the dev stack: stop at once.
			platform.WithDrainDelay(0),
		},
		Routes: map[string]http.Handler{
			FakeVendorPath + "/": http.StripPrefix(FakeVendorPath, vendor),
			"/":                  webHandler(cfg.Web),
		},
		Seed: &platform.SeedConfig{Mint: keys.Mint, Out: &seeded},
		Ready: func(addr string) {
			if err := banner(cfg, addr, keys, seeded.String()); err != nil && cfg.Log != nil {
				cfg.Log.Warn("banner", "error", err.Error())
			}
			if cfg.Ready != nil {
				cfg.Ready(addr)
			}
		},
	}
	return p.Serve(ctx, ln)
}

// webHandler serves the built browser app, or says how to build it.
func webHandler(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
			http.Error(w, "the browser app is not built: run `make run` (or `make web`) from the repository root", http.StatusNotFound)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// banner prints what a newcomer needs: where it runs, how to check it, and tokens.
func banner(cfg Config, addr string, keys *patient.Keys, seeded string) error {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, port)
	admin, _, _, err := keys.Sign(auth.Caller{Subject: "dev-admin", Role: roleAdmin}, 12*time.Hour)
	if err != nil {
		return err
	}
	lines := []string{
		"",
		"TrialHub dev stack",
		"  URL:        " + base + "   (gRPC, gRPC-Web and Connect JSON on one port; the web app at /)",
		"  data:       " + cfg.Data,
		"  health:     curl -s " + base + "/grpc.health.v1.Health/Check -H 'Content-Type: application/json' -d '{}'",
		"  services:   npx buf curl --http2-prior-knowledge --list-methods " + base,
		`              printf '\x00\x00\x00\x00\x13{"listServices":""}' | curl -s --http2-prior-knowledge -H 'Content-Type: application/connect+json' --data-binary @- ` +
			base + "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"  keys:       curl -s " + base + JWKSPath,
		"  SMS inbox:  curl -s '" + base + FakeVendorPath + "/inbox?channel=sms'   (codes the patient service sent)",
		"  push inbox: curl -s '" + base + FakeVendorPath + "/inbox?channel=push'  (reminders and alerts the notification service sent)",
	}
	if seeded != "" {
		lines = append(lines, strings.TrimRight(seeded, "\n"))
	}
	lines = append(lines,
		"  tokens:     go run ./services/stack/cmd/trialhub token --data "+cfg.Data+" --role analyst   (patient | investigator --site ID --trial ID | analyst --trial ID | admin | service)",
		"  admin token (12 h):",
		"    "+admin,
		"",
	)
	_, err = io.WriteString(cfg.Out, strings.Join(lines, "\n")+"\n")
	return err
}
