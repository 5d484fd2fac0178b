package fakevendor

import (
	"context"
	"maps"
	"net/http"
	"time"
)

// Messages returns copies of the messages accepted on channel (SMS or Push; ""
// for both), oldest first.
func (v *Vendor) Messages(channel string) []Message {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Message
	for _, m := range v.messages {
		if channel == "" || m.Channel == channel {
			out = append(out, clone(m))
		}
	}
	return out
}

// Deliveries returns how many messages were accepted under the Idempotency-Key
// key: 0 or 1, since a repeated key is not delivered again.
func (v *Vendor) Deliveries(key string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, m := range v.messages {
		if m.Key == key {
			n++
		}
	}
	return n
}

// Attempts returns how many send requests carried the Idempotency-Key key,
// whatever they were answered (key "" counts those without one).
func (v *Vendor) Attempts(key string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k := v.byKey[key]; k != nil {
		return k.attempts
	}
	return 0
}

// Answers returns the HTTP status of each answered send request under key, in
// the order they were answered: [429 202] is a rate-limited attempt and then an
// accepted one. A request still held is not in it yet.
func (v *Vendor) Answers(key string) []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k := v.byKey[key]; k != nil {
		return append([]int(nil), k.answers...)
	}
	return nil
}

// WaitFor returns nil once pred returns true, or ctx's error. pred is called now
// and again after every change the vendor sees (a request arriving, answered or
// delivered, a push opened, a fault switched), never under the vendor's lock, so
// it may call the vendor's methods: callers wait without sleeping.
func (v *Vendor) WaitFor(ctx context.Context, pred func() bool) error {
	for {
		v.mu.Lock()
		changed := v.changed
		v.mu.Unlock()
		if pred() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inbox answers GET /inbox?channel=sms|push&to=...&token=...&key=...: the
// accepted messages matching every filter given, oldest first.
func (v *Vendor) inbox(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	channel := q.Get("channel")
	if channel != "" && channel != SMS && channel != Push {
		writeError(w, http.StatusBadRequest, `channel must be "sms" or "push"`, "channel")
		return
	}
	out := []Message{}
	for _, m := range v.Messages(channel) {
		if match(q.Get("to"), m.To) && match(q.Get("token"), m.Token) && match(q.Get("key"), m.Key) {
			out = append(out, m)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func match(filter, value string) bool { return filter == "" || filter == value }

// opened answers POST /push/{id}/opened: the app reports the push was opened.
// The first report counts; later ones answer 204 too.
func (v *Vendor) opened(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.messages {
		if m.ID == id && m.Channel == Push {
			if m.Opened == nil {
				t := time.Now().UTC()
				m.Opened = &t
				v.notify()
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no such push", "id")
}

func clone(m *Message) Message {
	c := *m
	c.Params = maps.Clone(m.Params)
	if m.Opened != nil {
		t := *m.Opened
		c.Opened = &t
	}
	return c
}
