package fakevendor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
)

const apiKey = "test-api-key"

// wait is the generous bound for anything the tests wait for.
const wait = 30 * time.Second

// vendorClient is client.HTTP for the vendor at url with the API key, the
// dependency's defaults changed by tune.
func vendorClient(url string, tune func(*client.Dependency)) *http.Client {
	dep := client.Vendor("sms-vendor", url)
	dep.Breaker.Disabled = true // each test judges single calls, not the breaker
	if tune != nil {
		tune(&dep)
	}
	return client.HTTP(dep, client.WithTokens(auth.StaticToken(apiKey)))
}

// answer is a vendor's answer as the tests read it.
type answer struct {
	status     int
	id         string
	errMsg     string
	field      string
	retryAfter string
	raw        string
}

// post sends body (JSON-encoded unless it is []byte) to url+path with the
// Idempotency-Key key (none if "").
func post(ctx context.Context, c *http.Client, url, path, key string, body any) (answer, error) {
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return answer{}, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(b))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (answer, error) {
	res, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	var body struct{ ID, Error, Field string }
	_ = json.Unmarshal(raw, &body)
	return answer{status: res.StatusCode, id: body.ID, errMsg: body.Error, field: body.Field,
		retryAfter: res.Header.Get("Retry-After"), raw: string(raw)}, nil
}

func sms(to, text string) map[string]string { return map[string]string{"to": to, "text": text} }

// mustPost is post that fails the test on a transport error or another status.
func mustPost(t *testing.T, c *http.Client, url, path, key string, body any, status int) answer {
	t.Helper()
	a, err := post(t.Context(), c, url, path, key, body)
	if err != nil {
		t.Fatalf("POST %s (key %q): %v", path, key, err)
	}
	if a.status != status {
		t.Fatalf("POST %s (key %q): status %d, want %d: %s", path, key, a.status, status, a.raw)
	}
	return a
}

func setFault(t *testing.T, v *fakevendor.Vendor, f fakevendor.Fault) {
	t.Helper()
	if err := v.SetFault(f); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, v *fakevendor.Vendor, what string, pred func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := v.WaitFor(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func checkAnswers(t *testing.T, v *fakevendor.Vendor, key string, want ...int) {
	t.Helper()
	if got := v.Answers(key); !slices.Equal(got, want) {
		t.Errorf("answers under %q: %v, want %v", key, got, want)
	}
	if got := v.Attempts(key); got != len(want) {
		t.Errorf("attempts under %q: %d, want %d", key, got, len(want))
	}
}

func TestHealthyDelivers(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)

	a := mustPost(t, c, url, "/sms", "job-1", sms("+4512345678", "Your code is 123456"), http.StatusAccepted)
	if !strings.HasPrefix(a.id, "sms_") {
		t.Errorf("id %q, want sms_...", a.id)
	}
	p := mustPost(t, c, url, "/push", "job-2", map[string]any{"token": "device-token-1", "template": "visit_due",
		"params": map[string]string{"visit": "week 4"}}, http.StatusAccepted)

	msgs := v.Messages(fakevendor.SMS)
	if len(msgs) != 1 || msgs[0].ID != a.id || msgs[0].To != "+4512345678" || msgs[0].Text != "Your code is 123456" ||
		msgs[0].Key != "job-1" || msgs[0].Received.IsZero() {
		t.Errorf("sms inbox: %+v", msgs)
	}
	pushes := v.Messages(fakevendor.Push)
	if len(pushes) != 1 || pushes[0].ID != p.id || pushes[0].Token != "device-token-1" ||
		pushes[0].Template != "visit_due" || pushes[0].Params["visit"] != "week 4" {
		t.Errorf("push inbox: %+v", pushes)
	}
	if all := v.Messages(""); len(all) != 2 || all[0].ID != a.id || all[1].ID != p.id {
		t.Errorf("whole inbox, oldest first: %+v", all)
	}
	// Messages hands out copies.
	pushes[0].Params["visit"] = "changed"
	if got := v.Messages(fakevendor.Push)[0].Params["visit"]; got != "week 4" {
		t.Errorf("inbox changed through a copy: %q", got)
	}
	if n := v.Deliveries("job-1"); n != 1 {
		t.Errorf("deliveries of job-1: %d, want 1", n)
	}
	checkAnswers(t, v, "job-1", http.StatusAccepted)
}

func TestDedupeByKey(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)

	first := mustPost(t, c, url, "/sms", "job-7", sms("+4512345678", "code 111111"), http.StatusAccepted)
	for range 2 {
		again := mustPost(t, c, url, "/sms", "job-7", sms("+4512345678", "code 111111"), http.StatusAccepted)
		if again.id != first.id {
			t.Errorf("repeated key answered id %q, want the first answer %q", again.id, first.id)
		}
	}
	if n := v.Deliveries("job-7"); n != 1 {
		t.Errorf("deliveries of job-7: %d, want 1", n)
	}
	if n := len(v.Messages(fakevendor.SMS)); n != 1 {
		t.Errorf("%d messages in the inbox, want 1", n)
	}
	checkAnswers(t, v, "job-7", http.StatusAccepted, http.StatusAccepted, http.StatusAccepted)

	// Another body under the same key is refused, and delivers nothing.
	other := mustPost(t, c, url, "/sms", "job-7", sms("+4512345678", "code 222222"), http.StatusUnprocessableEntity)
	if other.field != "Idempotency-Key" {
		t.Errorf("field %q, want Idempotency-Key", other.field)
	}
	if n := v.Deliveries("job-7"); n != 1 {
		t.Errorf("deliveries of job-7 after another body: %d, want 1", n)
	}

	// Without a key every request is delivered.
	mustPost(t, c, url, "/sms", "", sms("+4512345678", "hello"), http.StatusAccepted)
	mustPost(t, c, url, "/sms", "", sms("+4512345678", "hello"), http.StatusAccepted)
	if n := v.Deliveries(""); n != 2 {
		t.Errorf("keyless deliveries: %d, want 2", n)
	}
}

// A vendor slower than the dependency's timeout: the caller gets a deadline error,
// the vendor delivers anyway, and the caller's retry under the same key is not
// delivered twice.
func TestSlowBeyondTimeout(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, func(d *client.Dependency) { d.Timeout = 100 * time.Millisecond })
	setFault(t, v, fakevendor.Fault{Mode: fakevendor.Slow, Delay: 400 * time.Millisecond})

	_, err := post(t.Context(), c, url, "/sms", "job-slow", sms("+4512345678", "code 333333"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow vendor: error %v, want a deadline error", err)
	}
	waitFor(t, v, "the late delivery", func() bool { return v.Deliveries("job-slow") == 1 })
	late := v.Messages(fakevendor.SMS)[0]

	setFault(t, v, fakevendor.Fault{Mode: fakevendor.Healthy})
	a := mustPost(t, c, url, "/sms", "job-slow", sms("+4512345678", "code 333333"), http.StatusAccepted)
	if a.id != late.ID {
		t.Errorf("retry answered id %q, want the late delivery's %q", a.id, late.ID)
	}
	if n := v.Deliveries("job-slow"); n != 1 {
		t.Errorf("deliveries: %d, want 1", n)
	}
	// The timed-out attempt was not retried by the client: its deadline had passed.
	checkAnswers(t, v, "job-slow", http.StatusAccepted, http.StatusAccepted)
}

// A hanging vendor: callers time out, Close releases every held request at once,
// and no goroutine outlives the vendor and its server.
func TestHangTimesOutAndCloseReleases(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	v := fakevendor.New(fakevendor.WithAPIKey(apiKey))
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- v.Serve(ctx, ln) }()
	defer stop()
	setFault(t, v, fakevendor.Fault{Mode: fakevendor.Hang})

	// Callers give up at the dependency's timeout.
	short := vendorClient(url, func(d *client.Dependency) { d.Timeout = 100 * time.Millisecond })
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = post(t.Context(), short, url, "/sms", "hang-"+string(rune('a'+i)), sms("+4512345678", "x"))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller %d: error %v, want a deadline error", i, err)
		}
	}
	// The vendor sees each caller give up and lets its request go.
	waitFor(t, v, "the abandoned requests answered", func() bool {
		for i := range errs {
			if len(v.Answers("hang-"+string(rune('a'+i)))) != 1 {
				return false
			}
		}
		return true
	})

	// Patient callers are held until Close, which answers them all 503. Sent
	// without a key, POSTs are not retried: one attempt each.
	patient := vendorClient(url, func(d *client.Dependency) { d.Timeout = 10 * time.Minute })
	answers := make([]answer, 3)
	errs = make([]error, 3)
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = post(t.Context(), patient, url, "/sms", "", sms("+4512345678", "x")) })
	}
	waitFor(t, v, "three held requests", func() bool { return v.Attempts("") == 3 })
	stop() // Serve closes the vendor, then shuts the server down
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return: Close did not release the held requests")
	}
	wg.Wait()
	for i := range answers {
		if errs[i] != nil || answers[i].status != http.StatusServiceUnavailable || answers[i].errMsg != "vendor closed" {
			t.Errorf("held caller %d: %+v, %v; want 503 vendor closed", i, answers[i], errs[i])
		}
	}
	if n := len(v.Messages("")); n != 0 {
		t.Errorf("a hanging vendor delivered %d messages", n)
	}

	// Everything the vendor, its server and the clients' connections ran has ended.
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestServerErrorRetried(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil) // 3 attempts

	setFault(t, v, fakevendor.Fault{Mode: fakevendor.ServerError}) // 503
	a := mustPost(t, c, url, "/sms", "job-503", sms("+4512345678", "x"), http.StatusServiceUnavailable)
	if a.errMsg != "Service Unavailable" {
		t.Errorf("error %q", a.errMsg)
	}
	checkAnswers(t, v, "job-503", 503, 503, 503)

	// 500 is not a status client.HTTP retries: one attempt.
	setFault(t, v, fakevendor.Fault{Mode: fakevendor.ServerError, Status: http.StatusInternalServerError})
	mustPost(t, c, url, "/sms", "job-500", sms("+4512345678", "x"), http.StatusInternalServerError)
	checkAnswers(t, v, "job-500", 500)

	// Neither delivered; once healed, the same key delivers once.
	if n := len(v.Messages("")); n != 0 {
		t.Fatalf("a failing vendor delivered %d messages", n)
	}
	setFault(t, v, fakevendor.Fault{})
	mustPost(t, c, url, "/sms", "job-503", sms("+4512345678", "x"), http.StatusAccepted)
	checkAnswers(t, v, "job-503", 503, 503, 503, 202)
	if n := v.Deliveries("job-503"); n != 1 {
		t.Errorf("deliveries: %d, want 1", n)
	}
}

// The vendor refuses every request inside its window, so an accepted second
// attempt proves the client waited as Retry-After asked.
func TestTooManyRequestsRetryAfterHonoured(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, func(d *client.Dependency) { d.Timeout = 20 * time.Second; d.BackoffMax = 5 * time.Second })

	setFault(t, v, fakevendor.Fault{Mode: fakevendor.TooManyRequests, RetryAfter: time.Second})
	mustPost(t, c, url, "/sms", "job-429", sms("+4512345678", "x"), http.StatusAccepted)
	checkAnswers(t, v, "job-429", 429, 202)
	if n := v.Deliveries("job-429"); n != 1 {
		t.Errorf("deliveries: %d, want 1", n)
	}

	// A client that does not wait as long as asked (its BackoffMax caps the
	// wait) has every attempt refused, with the Retry-After the vendor asked.
	setFault(t, v, fakevendor.Fault{Mode: fakevendor.TooManyRequests, RetryAfter: time.Hour})
	hasty := vendorClient(url, func(d *client.Dependency) { d.Timeout = 20 * time.Second; d.BackoffMax = 20 * time.Millisecond })
	a := mustPost(t, hasty, url, "/sms", "job-429-long", sms("+4512345678", "x"), http.StatusTooManyRequests)
	if a.retryAfter != "3600" {
		t.Errorf("Retry-After %q, want 3600", a.retryAfter)
	}
	checkAnswers(t, v, "job-429-long", 429, 429, 429)
	if n := v.Deliveries("job-429-long"); n != 0 {
		t.Errorf("deliveries: %d, want 0", n)
	}
}

func TestFlapping(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)

	setFault(t, v, fakevendor.Fault{Mode: fakevendor.Flapping}) // fail, serve, fail, serve ...
	for _, key := range []string{"flap-1", "flap-2"} {
		mustPost(t, c, url, "/sms", key, sms("+4512345678", key), http.StatusAccepted)
		checkAnswers(t, v, key, 503, 202)
	}

	setFault(t, v, fakevendor.Fault{Mode: fakevendor.Flapping, FlapEvery: 2, Status: http.StatusBadGateway})
	mustPost(t, c, url, "/sms", "flap-3", sms("+4512345678", "3"), http.StatusAccepted)
	checkAnswers(t, v, "flap-3", 502, 502, 202)
	mustPost(t, c, url, "/sms", "flap-4", sms("+4512345678", "4"), http.StatusAccepted)
	checkAnswers(t, v, "flap-4", 202)
	mustPost(t, c, url, "/sms", "flap-5", sms("+4512345678", "5"), http.StatusAccepted)
	checkAnswers(t, v, "flap-5", 502, 502, 202)
	if n := len(v.Messages("")); n != 5 {
		t.Errorf("%d deliveries, want 5", n)
	}
}

func get(t *testing.T, url string, into any) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	a, err := do(http.DefaultClient, req)
	if err != nil {
		t.Fatal(err)
	}
	if into != nil && a.status == http.StatusOK {
		if err := json.Unmarshal([]byte(a.raw), into); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, a.raw)
		}
	}
	return a
}

func TestInboxHTTP(t *testing.T) {
	_, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)
	one := mustPost(t, c, url, "/sms", "k1", sms("+4511111111", "code 1"), http.StatusAccepted)
	mustPost(t, c, url, "/sms", "k2", sms("+4522222222", "code 2"), http.StatusAccepted)
	push := mustPost(t, c, url, "/push", "k3", map[string]any{"token": "tok-1", "template": "reminder"}, http.StatusAccepted)

	var msgs []fakevendor.Message
	get(t, url+"/inbox?channel=sms&to=%2B4511111111", &msgs)
	if len(msgs) != 1 || msgs[0].ID != one.id || msgs[0].Text != "code 1" || msgs[0].Key != "k1" || msgs[0].Channel != "sms" {
		t.Errorf("inbox for +4511111111: %+v", msgs)
	}
	msgs = nil
	get(t, url+"/inbox?channel=sms", &msgs)
	if len(msgs) != 2 || msgs[1].To != "+4522222222" {
		t.Errorf("sms inbox: %+v", msgs)
	}
	msgs = nil
	if a := get(t, url+"/inbox?key=nobody", &msgs); a.raw != "[]\n" {
		t.Errorf("empty inbox answered %q, want []", a.raw)
	}
	if a := get(t, url+"/inbox?channel=fax", nil); a.status != http.StatusBadRequest || a.field != "channel" {
		t.Errorf("bad channel: %+v", a)
	}

	// The app reports the push opened.
	mustPost(t, c, url, "/push/"+push.id+"/opened", "", nil, http.StatusNoContent)
	msgs = nil
	get(t, url+"/inbox?channel=push&token=tok-1", &msgs)
	if len(msgs) != 1 || msgs[0].ID != push.id || msgs[0].Opened == nil || msgs[0].Template != "reminder" {
		t.Errorf("opened push: %+v", msgs)
	}
	if a := mustPost(t, c, url, "/push/"+one.id+"/opened", "", nil, http.StatusNotFound); a.field != "id" {
		t.Errorf("opening an SMS: %+v", a)
	}
}

func TestFaultsEndpoint(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, func(d *client.Dependency) { d.MaxAttempts = 1 })

	a := mustPost(t, c, url, "/faults", "", map[string]any{"mode": "too_many_requests", "retry_after_ms": 60000}, http.StatusOK)
	var f struct {
		Mode         string `json:"mode"`
		RetryAfterMS int64  `json:"retry_after_ms"`
		FlapEvery    int    `json:"flap_every"`
		Status       int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(a.raw), &f); err != nil || f.Mode != "too_many_requests" || f.RetryAfterMS != 60000 ||
		f.FlapEvery != 0 || f.Status != 0 {
		t.Errorf("POST /faults answered %s (%v), want the mode's settings only", a.raw, err)
	}
	// Defaults are filled in.
	if fl := mustPost(t, c, url, "/faults", "", map[string]string{"mode": "flapping"}, http.StatusOK); fl.raw != `{"mode":"flapping","flap_every":1,"status":503}`+"\n" {
		t.Errorf("flapping with defaults: %s", fl.raw)
	}
	mustPost(t, c, url, "/faults", "", map[string]any{"mode": "too_many_requests", "retry_after_ms": 60000}, http.StatusOK)
	if got := v.Fault(); got.Mode != fakevendor.TooManyRequests || got.RetryAfter != time.Minute {
		t.Errorf("Fault() = %+v", got)
	}
	if g := get(t, url+"/faults", nil); g.raw != a.raw {
		t.Errorf("GET /faults %s, want %s", g.raw, a.raw)
	}
	if s := mustPost(t, c, url, "/sms", "k", sms("+4512345678", "x"), http.StatusTooManyRequests); s.retryAfter != "60" {
		t.Errorf("Retry-After %q, want 60", s.retryAfter)
	}

	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"mode": "broken"}`, "mode"},
		{`{"mode": "slow"}`, "delay_ms"},
		{`{"mode": "slow", "delay_ms": -5}`, "delay_ms"},
		{`{"mode": "too_many_requests", "retry_after_ms": -1}`, "retry_after_ms"},
		{`{"mode": "flapping", "flap_every": -1}`, "flap_every"},
		{`{"mode": "server_error", "status": 404}`, "status"},
		{`{"mode": "healthy", "colour": "red"}`, ""},
		{`{"mode": `, ""},
	} {
		a := mustPost(t, c, url, "/faults", "", []byte(tc.body), http.StatusBadRequest)
		if a.field != tc.field || a.errMsg == "" {
			t.Errorf("POST /faults %s: %+v, want field %q", tc.body, a, tc.field)
		}
	}
	if got := v.Fault(); got.Mode != fakevendor.TooManyRequests {
		t.Errorf("a refused fault changed the fault to %+v", got)
	}

	mustPost(t, c, url, "/faults", "", map[string]string{"mode": "healthy"}, http.StatusOK)
	mustPost(t, c, url, "/sms", "k", sms("+4512345678", "x"), http.StatusAccepted)

	if err := v.SetFault(fakevendor.Fault{Mode: fakevendor.Slow}); err == nil || !strings.Contains(err.Error(), "delay") {
		t.Errorf("SetFault without a delay: %v", err)
	}
}

func TestAPIKey(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	noKey := client.HTTP(client.Vendor("sms-vendor", url))
	a := mustPost(t, noKey, url, "/sms", "k", sms("+4512345678", "x"), http.StatusUnauthorized)
	if a.field != "Authorization" {
		t.Errorf("401 field %q", a.field)
	}
	wrong := client.HTTP(client.Vendor("sms-vendor", url), client.WithTokens(auth.StaticToken("other")))
	mustPost(t, wrong, url, "/push", "k", map[string]string{"token": "t", "template": "x"}, http.StatusUnauthorized)
	mustPost(t, noKey, url, "/faults", "", map[string]string{"mode": "hang"}, http.StatusUnauthorized)
	for _, path := range []string{"/inbox", "/faults"} {
		res, err := noKey.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without the key: %d %v", path, res.StatusCode, res.Header)
		}
	}
	// Refused attempts are counted (and not retried: 4xx), nothing is delivered
	// and the fault is unchanged.
	checkAnswers(t, v, "k", 401, 401)
	if n := len(v.Messages("")); n != 0 || v.Fault().Mode != fakevendor.Healthy {
		t.Errorf("unauthorized requests changed the vendor: %d messages, fault %v", n, v.Fault())
	}
}

func TestBadInput(t *testing.T) {
	var logs bytes.Buffer
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey),
		fakevendor.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c := vendorClient(url, nil)
	const number = "+4598765432"
	for _, tc := range []struct {
		path  string
		body  string
		field string
	}{
		{"/sms", `{"to": "98765432", "text": "x"}`, "to"},
		{"/sms", `{"to": "+0598765432", "text": "x"}`, "to"},
		{"/sms", `{"to": "` + number + `", "text": ""}`, "text"},
		{"/sms", `{"to": "` + number + `", "text": "` + strings.Repeat("x", 1601) + `"}`, "text"},
		{"/sms", `{"to": "` + number + `", "text": "x", "from": "me"}`, ""},
		{"/sms", `{"to": 45}`, ""},
		{"/sms", `[]`, ""},
		{"/push", `{"template": "x"}`, "token"},
		{"/push", `{"token": "t"}`, "template"},
		{"/push", `{"token": "t", "template": "x", "params": {"": "v"}}`, "params"},
		{"/push", `{"token": "t", "template": "x", "params": {"a": 1}}`, ""},
	} {
		a := mustPost(t, c, url, tc.path, "", []byte(tc.body), http.StatusBadRequest)
		if a.field != tc.field || a.errMsg == "" {
			t.Errorf("POST %s %s: %+v, want field %q", tc.path, tc.body, a, tc.field)
		}
		if strings.Contains(a.raw, "98765432") {
			t.Errorf("error echoes the number: %s", a.raw)
		}
	}
	big := mustPost(t, c, url, "/sms", "", sms(number, strings.Repeat("x", 70<<10)), http.StatusRequestEntityTooLarge)
	if big.errMsg == "" {
		t.Errorf("413 without an error: %+v", big)
	}
	mustPost(t, c, url, "/sms", "logged-key", sms(number, "secret code 424242"), http.StatusAccepted)
	if n := v.Deliveries(""); n != 0 {
		t.Errorf("bad requests delivered %d messages", n)
	}
	out := logs.String()
	if !strings.Contains(out, "idempotency_key=logged-key") || !strings.Contains(out, "status=202") {
		t.Errorf("no request line in the log:\n%s", out)
	}
	if strings.Contains(out, "98765432") || strings.Contains(out, "424242") {
		t.Errorf("personal data in the log:\n%s", out)
	}
}

func TestWaitForContext(t *testing.T) {
	v := fakevendor.New()
	defer v.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := v.WaitFor(ctx, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitFor on a cancelled context: %v", err)
	}
	if err := v.WaitFor(ctx, func() bool { return true }); err != nil {
		t.Errorf("WaitFor with a true predicate: %v", err)
	}
}

// Concurrent requests under one key, as retries from several workers race: one
// delivery, every caller answered its id.
func TestDedupeConcurrent(t *testing.T) {
	v, url := fakevendor.Start(t, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := post(t.Context(), c, url, "/push", "race", map[string]any{"token": "t", "template": "x"})
			if err != nil || a.status != http.StatusAccepted {
				t.Errorf("caller %d: %+v, %v", i, a, err)
			}
			ids[i] = a.id
		})
	}
	wg.Wait()
	if d, a := v.Deliveries("race"), v.Attempts("race"); d != 1 || a != n {
		t.Errorf("deliveries %d, attempts %d; want 1, %d", d, a, n)
	}
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("caller %d answered %q, caller 0 %q", i, id, ids[0])
		}
	}
}

// BenchmarkSend is one keyed SMS through client.HTTP to a healthy vendor.
func BenchmarkSend(b *testing.B) {
	v, url := fakevendor.Start(b, fakevendor.WithAPIKey(apiKey))
	c := vendorClient(url, nil)
	i := 0
	for b.Loop() {
		i++
		a, err := post(b.Context(), c, url, "/sms", "bench-"+strconv.Itoa(i), sms("+4512345678", "x"))
		if err != nil || a.status != http.StatusAccepted {
			b.Fatalf("%+v, %v", a, err)
		}
	}
	if n := len(v.Messages(fakevendor.SMS)); n != i {
		b.Fatalf("%d deliveries, want %d", n, i)
	}
}
