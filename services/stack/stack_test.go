package stack_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
	"github.com/trialhub/trialhub/services/stack"
)

// startDev runs the dev stack on a free port and returns its base URL and banner.
func startDev(t *testing.T, data string) (string, *bytes.Buffer) {
	return startDevWeb(t, data, filepath.Join(t.TempDir(), "no-web"))
}

func startDevWeb(t *testing.T, data, web string) (string, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	out := &bytes.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- stack.Dev(ctx, stack.Config{Addr: "127.0.0.1:0", Data: data, Web: web, Out: out, Log: slog.New(slog.DiscardHandler), Ready: func(a string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("dev stack did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("dev stack did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev stack stopped with %v", err)
		}
	})
	return "http://" + addr, out
}

func TestDevStackServesHealthReflectionAndKeys(t *testing.T) {
	data := t.TempDir()
	base, banner := startDev(t, data)

	res, err := http.Post(base+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"SERVING"`) {
		t.Fatalf("health: %s %s", res.Status, body)
	}

	conn, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	list, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", names)
	}

	// A token minted by `trialhub token` for the same data folder verifies against
	// the keys the running stack publishes.
	keys := auth.NewRemoteKeys(auth.FetchJWKS(http.DefaultClient, base+stack.JWKSPath), 0, 0)
	verifier := auth.NewVerifier(keys, stack.Issuer)
	tok, err := stack.Token(stack.TokenRequest{Data: data, Role: "investigator", Sites: []string{"site-1"}})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := verifier.Verify(context.Background(), tok)
	if err != nil || caller.Role != authzv1.Role_ROLE_INVESTIGATOR || caller.Sites[0] != "site-1" {
		t.Fatalf("dev token: %+v %v", caller, err)
	}

	// The banner tells a newcomer where it runs and hands them an admin token.
	text := banner.String()
	if !strings.Contains(text, base) || !strings.Contains(text, "Health/Check") {
		t.Fatalf("banner lacks the URL or the health curl:\n%s", text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	admin := strings.TrimSpace(lines[len(lines)-1])
	if c, err := verifier.Verify(context.Background(), admin); err != nil || c.Role != authzv1.Role_ROLE_ADMIN {
		t.Fatalf("banner admin token: %+v %v", c, err)
	}
}

// Tokens minted by `trialhub token` are signed with the patient service's keys in
// the data folder, so a stack started later on the same data accepts them.
func TestDevStackKeepsItsKeysAcrossRestarts(t *testing.T) {
	data := t.TempDir()
	if _, err := stack.Token(stack.TokenRequest{Data: data, Role: "analyst"}); err == nil || !strings.Contains(err.Error(), "make run") {
		t.Fatalf("token before the stack ever ran: %v, want an error saying to start it", err)
	}
	first, _ := startDev(t, data)
	tok, err := stack.Token(stack.TokenRequest{Data: data, Role: "analyst", Trials: []string{"trial-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{first} {
		keys := auth.NewRemoteKeys(auth.FetchJWKS(http.DefaultClient, base+stack.JWKSPath), 0, 0)
		c, err := auth.NewVerifier(keys, stack.Issuer).Verify(context.Background(), tok)
		if err != nil || c.Role != authzv1.Role_ROLE_ANALYST || len(c.Trials) != 1 {
			t.Fatalf("minted token against the running stack's keys: %+v %v", c, err)
		}
	}
}

func TestTokenRequests(t *testing.T) {
	data := t.TempDir()
	base, _ := startDev(t, data)
	for _, tc := range []struct {
		req     stack.TokenRequest
		wantErr string
	}{
		{stack.TokenRequest{Role: "investigator"}, "--site"},
		{stack.TokenRequest{Role: "analyst", Sites: []string{"s"}}, "--site"},
		{stack.TokenRequest{Role: "admin", Trials: []string{"t"}}, "--trial"},
		{stack.TokenRequest{Role: "superuser"}, "--role"},
		{stack.TokenRequest{Role: ""}, "--role"},
	} {
		tc.req.Data = data
		if _, err := stack.Token(tc.req); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%+v: error %v, want one about %s", tc.req, err, tc.wantErr)
		}
	}
	verifier := auth.NewVerifier(auth.NewRemoteKeys(auth.FetchJWKS(http.DefaultClient, base+stack.JWKSPath), 0, 0), stack.Issuer)
	tok, err := stack.Token(stack.TokenRequest{Data: data, Role: "PATIENT"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := verifier.Verify(context.Background(), tok)
	if err != nil || c.Role != authzv1.Role_ROLE_PATIENT || len(c.Subject) != 36 {
		t.Fatalf("patient token: %+v %v (want a subject_uuid)", c, err)
	}
}

func TestDevStackServesTheWebApp(t *testing.T) {
	web := t.TempDir()
	if err := os.WriteFile(filepath.Join(web, "index.html"), []byte("<title>TrialHub</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, _ := startDevWeb(t, t.TempDir(), web)
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "<title>TrialHub</title>") {
		t.Fatalf("GET /: %s %s", res.Status, body)
	}

	unbuilt, _ := startDev(t, t.TempDir())
	res, err = http.Get(unbuilt + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "make run") {
		t.Fatalf("GET / without a built app: %s %s, want 404 saying how to build it", res.Status, body)
	}
}

// A service in the stack's table (here the stack's own plus the notes test
// service) is mounted: its database is data/<name>.db,
// migrated; its handlers answer on the one port through the whole chain; its
// seed ran through the API; and a restart on the same data seeds nothing twice.
func TestDevStackMountsAndSeedsItsServices(t *testing.T) {
	data := t.TempDir()
	countNotes := func(base string) string {
		tok, err := stack.Token(stack.TokenRequest{Data: data, Role: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, base+notes.CountNotesProcedure+"?encoding=json&message=%7B%7D", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET CountNotes: %s %s", res.Status, body)
		}
		return string(body)
	}
	var firstDevice string
	for run := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		out := &bytes.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- stack.Dev(ctx, stack.Config{Addr: "127.0.0.1:0", Data: data, Web: t.TempDir(), Out: out,
				Services: append(stack.Services(), notes.Service("dev")),
				Log:      slog.New(slog.DiscardHandler), Ready: func(a string) { ready <- a }})
		}()
		var addr string
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("run %d: dev stack did not start: %v", run, err)
		}
		if got := countNotes("http://" + addr); !strings.Contains(got, `"notes":1`) {
			t.Errorf("run %d: CountNotes = %s, want the one seeded note", run, got)
		}
		if !strings.Contains(out.String(), "notes:      a demo note") {
			t.Errorf("run %d: banner lacks the seed's line:\n%s", run, out)
		}
		// The trial service enrolled the patient service's demo patient, asking the
		// patient service with a SERVICE token it got by the client-credentials
		// exchange (the first run enrolls; the second finds the enrollment).
		if run == 0 && !strings.Contains(out.String(), "enrolled at CN-SH-01") {
			t.Errorf("run %d: the demo patient was not enrolled:\n%s", run, out)
		}
		// The notification service registered the demo patient's push device,
		// the same one on every start (the token is its natural key).
		_, after, ok := strings.Cut(out.String(), "push:       demo device ")
		device, _, _ := strings.Cut(after, " ")
		switch {
		case !ok:
			t.Errorf("run %d: no demo push device:\n%s", run, out)
		case run == 0:
			firstDevice = device
		case device != firstDevice:
			t.Errorf("run %d: demo device %s, first run %s", run, device, firstDevice)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run %d: stopped with %v", run, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "notes.db")); err != nil {
		t.Fatalf("the service's database: %v", err)
	}
}
