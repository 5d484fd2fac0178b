package patient_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// The dev stack's wiring, as the lead is asked to do it: the patient service's
// keys verify every call, mint the seed's tokens and the services' SERVICE
// tokens. The seed creates the staff and the demo patient and prints logins
// that work; a second start adds nothing.
func TestSeedWithStackWiring(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	run := func() string {
		keys := patient.NewKeys()
		var out bytes.Buffer
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		cctx, cancel := context.WithCancel(ctx)
		p := platform.Process{
			Name:     "trialhub",
			Services: []platform.Service{patient.Platform(patient.WithConfig(cfg), patient.WithKeys(keys))},
			DSN:      func(name string) string { return "sqlite:" + filepath.Join(dir, name+".db") },
			Verifier: auth.NewVerifier(keys, "trialhub"),
			Tokens:   keys.TokenSource,
			Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
				dep.BaseURL = "http://127.0.0.1:1"
				return dep, nil
			},
			Log:   slog.New(slog.DiscardHandler),
			Seed:  &platform.SeedConfig{Mint: keys.Mint, Out: &out},
			Ready: func(addr string) { ready <- addr },
		}
		done := make(chan error, 1)
		go func() { done <- p.Serve(cctx, ln) }()
		var addr string
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("stack did not start: %v", err)
		case <-time.After(2 * time.Minute):
			t.Fatal("stack did not start in 2 minutes")
		}
		e := &env{}
		public := bearer(t, "http://"+addr, "")
		e.auth = newAuthClient(public)
		if _, err := e.staffLogin("investigator", patient.DemoPassword); err != nil {
			t.Errorf("the printed investigator login: %v", err)
		}
		if m := regexp.MustCompile(`code ([0-9A-Z]{8})`).FindStringSubmatch(out.String()); m != nil {
			e.activate(t, patient.DemoPatientPhone, m[1], pw)
		}
		l, err := e.login(patient.DemoPatientPhone, pw)
		if err != nil || l.GetRole() != authzv1.Role_ROLE_PATIENT {
			t.Errorf("demo patient login: %v, %v", l, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stop: %v", err)
		}
		return out.String()
	}
	first := run()
	for _, want := range []string{"admin", "investigator", "analyst", patient.DemoPassword, "ActivateAccount with mobile"} {
		if !strings.Contains(first, want) {
			t.Errorf("first seed output lacks %q:\n%s", want, first)
		}
	}
	second := run()
	if !strings.Contains(second, "already activated") {
		t.Errorf("second seed output:\n%s", second)
	}
}
