package fakevendor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"
)

// The channels a message is sent on.
const (
	SMS  = "sms"
	Push = "push"
)

// Message is one accepted message, as the inbox holds it.
type Message struct {
	ID      string `json:"id"`
	Channel string `json:"channel"` // SMS or Push
	// Key is the request's Idempotency-Key, if it had one.
	Key string `json:"idempotency_key,omitempty"`
	// To and Text are an SMS's.
	To   string `json:"to,omitempty"`
	Text string `json:"text,omitempty"`
	// Token, Template and Params are a push's.
	Token    string            `json:"token,omitempty"`
	Template string            `json:"template,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	// Opened is when the app reported the push opened (POST /push/{id}/opened).
	Opened   *time.Time `json:"opened_at,omitempty"`
	Received time.Time  `json:"received_at"`
}

// Limits of what the vendor accepts, as real vendors have.
const (
	maxText   = 1600 // an SMS of up to 10 concatenated parts
	maxToken  = 4096
	maxParams = 32
	maxParam  = 1024
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

type smsRequest struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

type pushRequest struct {
	Token    string            `json:"token"`
	Template string            `json:"template"`
	Params   map[string]string `json:"params"`
}

// parse reads a send request's body into a Message, or names the bad field. The
// messages never contain the value: it may be personal data.
func parse(channel string, body []byte) (Message, *fieldError) {
	m := Message{Channel: channel}
	switch channel {
	case SMS:
		var in smsRequest
		if err := decodeStrict(body, &in); err != nil {
			return m, &fieldError{"", err.Error()}
		}
		switch {
		case !e164.MatchString(in.To):
			return m, &fieldError{"to", "must be an E.164 number (+ and up to 15 digits)"}
		case in.Text == "":
			return m, &fieldError{"text", "must not be empty"}
		case utf8.RuneCountInString(in.Text) > maxText:
			return m, &fieldError{"text", "longer than 1600 characters"}
		}
		m.To, m.Text = in.To, in.Text
	case Push:
		var in pushRequest
		if err := decodeStrict(body, &in); err != nil {
			return m, &fieldError{"", err.Error()}
		}
		switch {
		case in.Token == "":
			return m, &fieldError{"token", "must not be empty"}
		case len(in.Token) > maxToken:
			return m, &fieldError{"token", "longer than 4096 bytes"}
		case in.Template == "":
			return m, &fieldError{"template", "must not be empty"}
		case len(in.Params) > maxParams:
			return m, &fieldError{"params", "more than 32 parameters"}
		}
		for k, p := range in.Params {
			if k == "" || len(k)+len(p) > maxParam {
				return m, &fieldError{"params", "a parameter's name is empty or it is longer than 1024 bytes"}
			}
		}
		m.Token, m.Template, m.Params = in.Token, in.Template, in.Params
	}
	return m, nil
}

// reply is one answer to a send request.
type reply struct {
	status     int
	body       any
	retryAfter string
}

type accepted struct {
	ID string `json:"id"`
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// send handles POST /sms and POST /push: the attempt is counted, then the API key
// checked, the fault applied, the body checked and the message delivered once per
// Idempotency-Key.
func (v *Vendor) send(channel string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		attempt := v.attempt(key)
		rep := v.handle(channel, key, w, r)
		v.answered(key, rep.status)
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		if rep.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fakevendor"`)
		}
		writeJSON(w, rep.status, rep.body)
		v.log.Info("fakevendor request", "method", r.Method, "path", r.URL.Path, "status", rep.status,
			"idempotency_key", key, "attempt", attempt)
	}
}

func (v *Vendor) handle(channel, key string, w http.ResponseWriter, r *http.Request) reply {
	if !v.allowed(r) {
		return fail(http.StatusUnauthorized, "missing or wrong API key", "Authorization")
	}
	// Read the body first: a client that gives up while the request is held must
	// not take the body with it, since Slow still delivers.
	body, err := readBody(w, r)
	if err != nil {
		return fail(http.StatusRequestEntityTooLarge, "body larger than 64 KiB or unreadable", "")
	}
	verdict := v.judge(time.Now())
	switch {
	case verdict.hang:
		select {
		case <-r.Context().Done():
			return fail(http.StatusServiceUnavailable, "client gave up", "")
		case <-v.done:
			return fail(http.StatusServiceUnavailable, "vendor closed", "")
		}
	case verdict.hold > 0:
		t := time.NewTimer(verdict.hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-v.done:
			return fail(http.StatusServiceUnavailable, "vendor closed", "")
		}
	case verdict.status != 0:
		rep := fail(verdict.status, http.StatusText(verdict.status), "")
		rep.retryAfter = verdict.retryAfter
		return rep
	}
	m, bad := parse(channel, body)
	if bad != nil {
		return fail(http.StatusBadRequest, bad.Error(), bad.field)
	}
	return v.deliver(m, key, r.URL.Path, body)
}

// deliver stores m, once per key: a repeated key answers the first answer.
func (v *Vendor) deliver(m Message, key, path string, body []byte) reply {
	sum := sha256.Sum256(append([]byte(path+"\n"), body...))
	digest := hex.EncodeToString(sum[:])
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.byKey[key]
	if key != "" && k.message != nil {
		if k.digest != digest {
			return fail(http.StatusUnprocessableEntity, "Idempotency-Key was used for another request", "Idempotency-Key")
		}
		return reply{status: http.StatusAccepted, body: accepted{ID: k.message.ID}}
	}
	m.ID = m.Channel + "_" + rand.Text()
	m.Key = key
	m.Received = time.Now().UTC()
	v.messages = append(v.messages, &m)
	if key != "" {
		k.message, k.digest = &m, digest
	}
	v.notify()
	return reply{status: http.StatusAccepted, body: accepted{ID: m.ID}}
}

// attempt counts a request under key and returns its number.
func (v *Vendor) attempt(key string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.byKey[key]
	if k == nil {
		k = &keyed{}
		v.byKey[key] = k
	}
	k.attempts++
	v.notify()
	return k.attempts
}

// answered records the status an attempt under key was answered.
func (v *Vendor) answered(key string, status int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.byKey[key]
	k.answers = append(k.answers, status)
	v.notify()
}

func fail(status int, msg, field string) reply {
	return reply{status: status, body: errorBody{Error: msg, Field: field}}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, errorBody{Error: msg, Field: field})
}
