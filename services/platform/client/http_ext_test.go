package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

// vendor is a misbehaving plain-HTTP vendor: it answers each request with the
// next scripted status (then with always), drops the connection for status -1,
// hangs until the request goes away for status -2, and records what it received.
type vendor struct {
	*httptest.Server
	mu       sync.Mutex
	script   []int
	always   int
	received []received
}

type received struct {
	method, body, authorization string
}

const (
	dropConnection = -1
	hangForever    = -2
)

func newVendor(t *testing.T, tls bool) *vendor {
	t.Helper()
	v := &vendor{always: http.StatusOK}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v.mu.Lock()
		v.received = append(v.received, received{r.Method, string(body), r.Header.Get("Authorization")})
		status := v.always
		if len(v.script) > 0 {
			status, v.script = v.script[0], v.script[1:]
		}
		v.mu.Unlock()
		switch status {
		case dropConnection:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case hangForever:
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "answer "+http.StatusText(status))
		}
	})
	if tls {
		v.Server = httptest.NewTLSServer(handler)
	} else {
		v.Server = httptest.NewServer(handler)
	}
	t.Cleanup(v.Close)
	return v
}

func (v *vendor) answer(statuses ...int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.script = append(v.script, statuses...)
}

func (v *vendor) answerAlways(status int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.always = status
}

func (v *vendor) requests() []received {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]received(nil), v.received...)
}

// dependency describes the vendor with backoffs short enough for tests.
func (v *vendor) dependency() client.Dependency {
	dep := client.Vendor("sms-vendor", v.URL)
	dep.BackoffBase, dep.BackoffMax = time.Millisecond, 5*time.Millisecond
	dep.Breaker = testBreaker
	return dep
}

func send(t *testing.T, c *http.Client, method, url, body string, header http.Header) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func TestHTTPRetriesSafeRequests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
	}{
		{"GET", http.MethodGet, nil},
		{"PUT", http.MethodPut, nil},
		{"DELETE", http.MethodDelete, nil},
		{"POST with an Idempotency-Key", http.MethodPost, http.Header{"Idempotency-Key": {"sms-42"}}},
	} {
		for name, fault := range map[string]int{"503": 503, "502": 502, "504": 504, "429": 429, "dropped connection": dropConnection} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				v := newVendor(t, false)
				v.answer(fault, fault)
				status, body, err := send(t, quietHTTP(v.dependency()), tc.method, v.URL+"/messages", `{"to":"+49151"}`, tc.header)
				if err != nil || status != http.StatusOK || body != "answer OK" {
					t.Fatalf("after two %s: %d %q %v, want the third attempt's 200", name, status, body, err)
				}
				got := v.requests()
				if len(got) != 3 {
					t.Fatalf("vendor saw %d attempts, want 3", len(got))
				}
				for i, r := range got {
					if r.method != tc.method || r.body != `{"to":"+49151"}` {
						t.Errorf("attempt %d: %s %q, want the same request replayed", i, r.method, r.body)
					}
				}
			})
		}
	}
}

func TestHTTPNeverResendsAnUnsafeRequest(t *testing.T) {
	for name, fault := range map[string]int{"503": 503, "429": 429, "dropped connection": dropConnection} {
		t.Run("POST/"+name, func(t *testing.T) {
			v := newVendor(t, false)
			v.answerAlways(fault)
			status, _, err := send(t, quietHTTP(v.dependency()), http.MethodPost, v.URL+"/messages", "hello", nil)
			if fault == dropConnection {
				if err == nil {
					t.Fatalf("dropped connection: status %d, want an error", status)
				}
			} else if err != nil || status != fault {
				t.Fatalf("got %d %v, want the vendor's %d passed on", status, err, fault)
			}
			if n := len(v.requests()); n != 1 {
				t.Errorf("vendor saw %d attempts of a POST without Idempotency-Key, want exactly 1", n)
			}
		})
	}
	t.Run("4xx and 500 are not retried", func(t *testing.T) {
		v := newVendor(t, false)
		v.answer(400, 404, 500)
		c := quietHTTP(v.dependency())
		for _, want := range []int{400, 404, 500} {
			if status, _, err := send(t, c, http.MethodGet, v.URL, "", nil); err != nil || status != want {
				t.Fatalf("got %d %v, want %d", status, err, want)
			}
		}
		if n := len(v.requests()); n != 3 {
			t.Errorf("vendor saw %d attempts for 3 requests, want 3", n)
		}
	})
}

func TestHTTPBreaker(t *testing.T) {
	for name, fault := range map[string]int{"500": 500, "503": 503, "429": 429, "dropped connection": dropConnection} {
		t.Run("opens on "+name, func(t *testing.T) {
			v := newVendor(t, false)
			v.answerAlways(fault)
			dep := v.dependency()
			dep.MaxAttempts = 1
			c := quietHTTP(dep)
			for range testBreaker.MinCalls {
				_, _, _ = send(t, c, http.MethodGet, v.URL, "", nil)
			}
			_, _, err := send(t, c, http.MethodGet, v.URL, "", nil)
			if !errors.Is(err, client.ErrOpen) || !strings.Contains(err.Error(), "sms-vendor: circuit breaker open") {
				t.Fatalf("after %d failures: %v, want an error wrapping client.ErrOpen naming the vendor", testBreaker.MinCalls, err)
			}
			if n := len(v.requests()); n != int(testBreaker.MinCalls) {
				t.Errorf("vendor saw %d requests, want %d: none while open", n, testBreaker.MinCalls)
			}
			// After OpenFor a probe goes through; the vendor has healed.
			v.answerAlways(http.StatusOK)
			time.Sleep(testBreaker.OpenFor + 50*time.Millisecond)
			if status, _, err := send(t, c, http.MethodGet, v.URL, "", nil); err != nil || status != http.StatusOK {
				t.Fatalf("probe after OpenFor: %d %v, want 200", status, err)
			}
		})
	}
	t.Run("stays closed on 4xx", func(t *testing.T) {
		v := newVendor(t, false)
		v.answerAlways(http.StatusBadRequest)
		c := quietHTTP(v.dependency())
		calls := 2 * int(testBreaker.MinCalls)
		for i := range calls {
			if status, _, err := send(t, c, http.MethodGet, v.URL, "", nil); err != nil || status != 400 {
				t.Fatalf("call %d: %d %v, want 400", i, status, err)
			}
		}
		if n := len(v.requests()); n != calls {
			t.Errorf("vendor saw %d requests, want all %d", n, calls)
		}
	})
}

func TestHTTPTimeout(t *testing.T) {
	v := newVendor(t, false)
	v.answerAlways(hangForever)
	dep := v.dependency()
	dep.Timeout = 200 * time.Millisecond
	c := quietHTTP(dep)
	// Callers that allow much less than the timeout learn nothing about the vendor.
	for i := range 2 * testBreaker.MinCalls {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.URL, nil)
		_, err := c.Do(req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrOpen) {
			t.Fatalf("hasty call %d: %v, want a deadline error: hasty callers opened the breaker", i, err)
		}
	}
	for i := range testBreaker.MinCalls {
		start := time.Now()
		_, _, err := send(t, c, http.MethodGet, v.URL, "", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d to a hung vendor: %v, want a deadline error", i, err)
		}
		if took := time.Since(start); took < dep.Timeout || took > 5*time.Second {
			t.Errorf("call %d took %v, want about the %v timeout", i, took, dep.Timeout)
		}
	}
	// A vendor that hangs on every request opens the breaker like one that fails.
	_, _, err := send(t, c, http.MethodGet, v.URL, "", nil)
	if !errors.Is(err, client.ErrOpen) {
		t.Fatalf("after %d timeouts: %v, want the breaker open", testBreaker.MinCalls, err)
	}
}

func TestHTTPTokens(t *testing.T) {
	v := newVendor(t, true)
	dep := v.dependency()
	c := quietHTTP(dep, client.WithTokens(auth.StaticToken("vendor-api-key")), client.WithRoundTripper(v.Client().Transport))
	if status, _, err := send(t, c, http.MethodGet, v.URL, "", nil); err != nil || status != 200 {
		t.Fatalf("over TLS: %d %v", status, err)
	}
	if _, _, err := send(t, c, http.MethodGet, v.URL, "", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}); err != nil {
		t.Fatal(err)
	}
	got := v.requests()
	if len(got) != 2 || got[0].authorization != "Bearer vendor-api-key" || got[1].authorization != "Basic dXNlcjpwYXNz" {
		t.Fatalf("vendor saw %+v, want the token, then the caller's own Authorization kept", got)
	}
	broken := quietHTTP(dep, client.WithTokens(brokenTokens{errors.New("vault sealed")}), client.WithRoundTripper(v.Client().Transport))
	if _, _, err := send(t, broken, http.MethodGet, v.URL, "", nil); err == nil || !strings.Contains(err.Error(), "vault sealed") {
		t.Fatalf("without a token: %v, want the token source's error", err)
	}
	if n := len(v.requests()); n != 2 {
		t.Errorf("vendor saw %d requests, want none without a token", n)
	}
}

// quietHTTP is client.HTTP with the breaker's log discarded.
func quietHTTP(dep client.Dependency, opts ...client.Option) *http.Client {
	return client.HTTP(dep, append([]client.Option{client.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
}
