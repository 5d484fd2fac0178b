package platform_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/request"
)

// infos records the request.Info each handler sees.
type infos struct {
	mu   sync.Mutex
	last request.Info
}

func (i *infos) interceptor(next connect.ServerFunc) connect.ServerFunc {
	return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
		i.mu.Lock()
		i.last = request.From(ctx)
		i.mu.Unlock()
		return next(ctx, spec, stream)
	}
}

func (i *infos) get() request.Info {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.last
}

func TestRequestInfo(t *testing.T) {
	rec := &infos{}
	f := newFixture(t, platform.WithInterceptors(rec.interceptor))
	token := f.token(authzv1.Role_ROLE_SERVICE, "epro")
	const procedure = patientv1connect.PatientServiceGetSubjectStatusProcedure
	post := func(t *testing.T, header map[string]string) (*http.Response, request.Info) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.url+procedure, strings.NewReader(`{"subjectUuid":"`+uuid.NewString()+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s", res.Status)
		}
		return res, rec.get()
	}

	t.Run("a well-formed request id is kept, echoed and logged", func(t *testing.T) {
		res, info := post(t, map[string]string{"X-Request-Id": "req-42.a_b:c"})
		if info.ID != "req-42.a_b:c" || res.Header.Get("X-Request-Id") != info.ID {
			t.Fatalf("id %q, echoed %q", info.ID, res.Header.Get("X-Request-Id"))
		}
		var logged bool
		for _, line := range f.rpcLines(procedure) {
			logged = logged || line["request_id"] == info.ID
		}
		if !logged {
			t.Fatalf("no rpc log line with request_id %s:\n%s", info.ID, f.logs.String())
		}
	})
	t.Run("a malformed or missing one is replaced", func(t *testing.T) {
		seen := map[string]bool{}
		for _, id := range []string{"", "has spaces", "semi;colon", strings.Repeat("x", 65)} {
			res, info := post(t, map[string]string{"X-Request-Id": id})
			if info.ID == "" || info.ID == id || seen[info.ID] || res.Header.Get("X-Request-Id") != info.ID {
				t.Fatalf("inbound %q: id %q, echoed %q", id, info.ID, res.Header.Get("X-Request-Id"))
			}
			seen[info.ID] = true
		}
	})
	t.Run("procedure, client host, truncated headers, trace id", func(t *testing.T) {
		_, info := post(t, map[string]string{
			"User-Agent":      strings.Repeat("u", 1000),
			"X-App-Version":   "2.3.1-" + strings.Repeat("v", 200),
			"X-Forwarded-For": "203.0.113.7",
			"Traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		})
		if info.Procedure != procedure {
			t.Errorf("procedure %q", info.Procedure)
		}
		if info.ClientAddr != "127.0.0.1" {
			t.Errorf("client addr %q, want the peer's host 127.0.0.1 (X-Forwarded-For not trusted by default)", info.ClientAddr)
		}
		if len(info.UserAgent) != 256 || len(info.AppVersion) != 64 || !strings.HasPrefix(info.AppVersion, "2.3.1-") {
			t.Errorf("user agent %d bytes, app version %q", len(info.UserAgent), info.AppVersion)
		}
		if info.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("trace id %q", info.TraceID)
		}
	})
	t.Run("refused calls carry the id too", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, f.url+procedure, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", "refused-1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("X-Request-Id") != "refused-1" {
			t.Fatalf("%s, X-Request-Id %q", res.Status, res.Header.Get("X-Request-Id"))
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		trusted   []string
		forwarded string
		want      string
	}{
		{[]string{"127.0.0.0/8"}, "203.0.113.7, 10.0.0.1", "10.0.0.1"},
		{[]string{"127.0.0.0/8", "10.0.0.0/8"}, "203.0.113.7, 10.0.0.1", "203.0.113.7"},
		{[]string{"127.0.0.0/8"}, "", "127.0.0.1"},
		{[]string{"127.0.0.0/8"}, "not-an-ip", "127.0.0.1"},
		{[]string{"192.0.2.0/24"}, "203.0.113.7", "127.0.0.1"}, // the peer is no trusted proxy
	} {
		t.Run(tc.forwarded, func(t *testing.T) {
			rec := &infos{}
			var prefixes []netip.Prefix
			for _, p := range tc.trusted {
				prefixes = append(prefixes, netip.MustParsePrefix(p))
			}
			f := newFixture(t, platform.WithTrustedProxies(prefixes...), platform.WithInterceptors(rec.interceptor))
			req, _ := http.NewRequest(http.MethodPost, f.url+patientv1connect.PatientServiceGetSubjectStatusProcedure,
				strings.NewReader(`{"subjectUuid":"`+uuid.NewString()+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+f.token(authzv1.Role_ROLE_SERVICE, "epro"))
			if tc.forwarded != "" {
				req.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatal(res.Status)
			}
			if got := rec.get().ClientAddr; got != tc.want {
				t.Fatalf("trusted %v, X-Forwarded-For %q: client %q, want %q", tc.trusted, tc.forwarded, got, tc.want)
			}
		})
	}
}

func TestMiddlewareRunsFirstInOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	mark := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				if r.Header.Get("X-Shed") != "" {
					http.Error(w, "overloaded", http.StatusServiceUnavailable)
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	f := newFixture(t, platform.WithMiddleware(mark("outer"), mark("inner")), platform.WithMiddleware(mark("third")))
	// An unauthenticated call passes through the middleware before it is refused.
	res, _ := f.do(t, http.MethodPost, patientv1connect.PatientServiceGetSubjectStatusProcedure, "", `{}`)
	mu.Lock()
	got := strings.Join(order, ",")
	mu.Unlock()
	if res.StatusCode != http.StatusUnauthorized || got != "outer,inner,third" {
		t.Fatalf("%s; middleware ran %q, want outer,inner,third then 401", res.Status, got)
	}
	// A middleware can answer before authentication and CORS.
	req, _ := http.NewRequest(http.MethodOptions, f.url+patientv1connect.PatientServiceGetProfileProcedure, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("X-Shed", "1")
	shed, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	shed.Body.Close()
	if shed.StatusCode != http.StatusServiceUnavailable || shed.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("shed preflight: %s, allow-origin %q; want 503 from the middleware", shed.Status, shed.Header.Get("Access-Control-Allow-Origin"))
	}
}
