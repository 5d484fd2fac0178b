// Package fakevendor is a fake SMS and push vendor for tests and the dev stack: a
// real HTTP server whose inbox can be read and whose faults can be switched at run
// time, so the code that calls vendors (client.HTTP, the notification workers) is
// tested against the failures real vendors have.
//
//	v, url := fakevendor.Start(t, fakevendor.WithAPIKey("k"))
//	sms := client.HTTP(client.Vendor("sms-vendor", url), client.WithTokens(auth.StaticToken("k")))
//	... POST url+"/sms" {"to": "+4512345678", "text": "code 123456"}, Idempotency-Key: job-7 ...
//	v.WaitFor(ctx, func() bool { return v.Deliveries("job-7") == 1 })
//	v.SetFault(fakevendor.Fault{Mode: fakevendor.TooManyRequests, RetryAfter: time.Second})
//
// The wire API (JSON bodies; errors are {"error": "...", "field": "..."}):
//
//	POST /sms               {"to": "+E164", "text": "..."}                        -> 202 {"id": "..."}
//	POST /push              {"token": "...", "template": "...", "params": {...}}  -> 202 {"id": "..."}
//	POST /push/{id}/opened  the app reports that the user opened the push         -> 204
//	GET  /inbox?channel=sms|push&to=...&token=...&key=...  accepted messages, oldest first
//	GET  /faults, POST /faults {"mode": "slow", "delay_ms": 800, ...}  the current fault
//
// POST /sms and POST /push honour an Idempotency-Key header as push vendors do: the
// first accepted request under a key is delivered, and every later one with the
// same key is answered the first answer without a second delivery (another body
// under the same key is refused with 422). Every request is counted per key, so a
// test asserts "delivered once, attempted three times". Faults apply to those two
// endpoints only; the inbox and /faults always answer, so a faulted vendor can be
// inspected and healed.
//
// With WithAPIKey every endpoint requires "Authorization: Bearer <key>" (401
// otherwise). The inbox holds what was sent, personal data included: it is a test
// tool, and the vendor never logs bodies, numbers or tokens.
package fakevendor

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Vendor is the fake vendor, an http.Handler. Its methods are safe for concurrent
// use. Close it when done: that releases every held request.
type Vendor struct {
	apiKey string
	log    *slog.Logger
	mux    *http.ServeMux

	mu       sync.Mutex
	fault    Fault
	faultSet time.Time // when fault was set: starts the flapping count and the 429 window
	flapped  int       // requests the current Flapping fault has judged
	limitEnd time.Time // TooManyRequests refuses requests before this
	messages []*Message
	byKey    map[string]*keyed
	changed  chan struct{} // closed and replaced on every change WaitFor watches
	closed   bool
	done     chan struct{} // closed by Close
	inflight sync.WaitGroup
}

// keyed is what the vendor knows of one Idempotency-Key.
type keyed struct {
	attempts int
	answers  []int    // the status of each attempt, in the order they were answered
	message  *Message // the delivery, once one was accepted
	digest   string   // what was sent under the key: path and body
}

// Option configures New.
type Option func(*Vendor)

// WithAPIKey makes every endpoint require "Authorization: Bearer key" and answer
// 401 without it. Default: no key required.
func WithAPIKey(key string) Option { return func(v *Vendor) { v.apiKey = key } }

// WithLogger logs one line per request: method, path, status, Idempotency-Key and
// attempt; never a body, number or token. Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(v *Vendor) { v.log = l } }

// New returns a healthy vendor with an empty inbox.
func New(opts ...Option) *Vendor {
	v := &Vendor{
		log:     slog.New(slog.DiscardHandler),
		byKey:   map[string]*keyed{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(v)
	}
	v.faultSet = time.Now()
	v.mux = http.NewServeMux()
	v.mux.Handle("POST /sms", v.send(SMS))
	v.mux.Handle("POST /push", v.send(Push))
	v.mux.HandleFunc("POST /push/{id}/opened", v.authorized(v.opened))
	v.mux.HandleFunc("GET /inbox", v.authorized(v.inbox))
	v.mux.HandleFunc("GET /faults", v.authorized(v.getFault))
	v.mux.HandleFunc("POST /faults", v.authorized(v.postFault))
	return v
}

// ServeHTTP implements http.Handler. After Close every request is answered 503.
func (v *Vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "vendor closed", "")
		return
	}
	v.inflight.Add(1)
	v.mu.Unlock()
	defer v.inflight.Done()
	v.mux.ServeHTTP(w, r)
}

// Close releases every request the vendor holds (Hang, Slow) at once, answering
// them 503, and returns when no request is inside the vendor any more. Later
// requests are answered 503. Close is idempotent.
func (v *Vendor) Close() {
	v.mu.Lock()
	if !v.closed {
		v.closed = true
		close(v.done)
	}
	v.mu.Unlock()
	v.inflight.Wait()
}

// Serve serves the vendor on ln until ctx is done, then closes the vendor (so
// held requests end), shuts the server down and returns nil; or returns the error
// that stopped serving.
func (v *Vendor) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
	// Shutdown waits 5 s for connections that never sent a request (a client's
	// spare dials); they have nothing to lose, so close them once listening stops.
	var mu sync.Mutex
	fresh := map[net.Conn]bool{}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateNew {
			fresh[c] = true
		} else {
			delete(fresh, c)
		}
	}
	srv.RegisterOnShutdown(func() {
		mu.Lock()
		defer mu.Unlock()
		for c := range fresh {
			_ = c.Close()
		}
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		v.Close()
		return err
	case <-ctx.Done():
	}
	v.Close()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// TB is the part of testing.TB that Start uses; a *testing.T is one. (The package
// does not import testing, so that `trialhub fakevendor` does not link it in.)
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Start serves a new vendor on a loopback port for the test tb and returns it and
// its base URL ("http://127.0.0.1:port"). The vendor and its server are closed
// when the test ends.
func Start(tb TB, opts ...Option) (*Vendor, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakevendor: listen: %v", err)
	}
	v := New(opts...)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- v.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			tb.Errorf("fakevendor: serve: %v", err)
		}
	})
	return v, "http://" + ln.Addr().String()
}

// authorized wraps h with the API key check.
func (v *Vendor) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !v.allowed(r) {
			unauthorized(w)
			return
		}
		h(w, r)
	}
}

func (v *Vendor) allowed(r *http.Request) bool {
	if v.apiKey == "" {
		return true
	}
	want := "Bearer " + v.apiKey
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="fakevendor"`)
	writeError(w, http.StatusUnauthorized, "missing or wrong API key", "Authorization")
}

// notify wakes WaitFor; v.mu must be held.
func (v *Vendor) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// readBody reads at most maxBody bytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
}

const maxBody = 64 << 10
