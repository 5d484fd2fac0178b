package fakevendor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Mode is how the vendor answers POST /sms and POST /push.
type Mode string

// The fault modes. The zero Mode is Healthy.
const (
	// Healthy accepts every valid request at once.
	Healthy Mode = "healthy"
	// Slow holds each request for Delay, then accepts it, even when the client
	// has given up meanwhile: the message is delivered late, as a slow vendor's is.
	Slow Mode = "slow"
	// Hang holds each request, delivering nothing, until the client gives up or
	// the vendor is closed.
	Hang Mode = "hang"
	// ServerError answers Status (default 503) without delivering.
	ServerError Mode = "server_error"
	// TooManyRequests is a rate limit of one request per RetryAfter (default 1s),
	// the window starting when the fault is set: a request inside the window is
	// answered 429 with Retry-After (the rest of the window, whole seconds rounded
	// up); the first one after it is served, and opens the next window.
	TooManyRequests Mode = "too_many_requests"
	// Flapping alternates, from when the fault is set: FlapEvery (default 1)
	// requests answered Status (default 503), then FlapEvery served, and so on.
	Flapping Mode = "flapping"
)

// Fault is what the vendor does with the requests it is sent. The zero Fault is
// healthy.
type Fault struct {
	Mode Mode
	// Delay is how long Slow holds each request. Required for Slow.
	Delay time.Duration
	// RetryAfter is TooManyRequests' window. Default 1s.
	RetryAfter time.Duration
	// FlapEvery is the length of each of Flapping's runs. Default 1.
	FlapEvery int
	// Status is what ServerError and Flapping answer, 500 to 599. Default 503.
	Status int
}

// faultJSON is a Fault on the wire (POST /faults, GET /faults); times in ms.
type faultJSON struct {
	Mode         Mode  `json:"mode"`
	DelayMS      int64 `json:"delay_ms,omitempty"`
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	FlapEvery    int   `json:"flap_every,omitempty"`
	Status       int   `json:"status,omitempty"`
}

// fieldError is a bad value of one field.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// withDefaults checks f and fills in its defaults.
func (f Fault) withDefaults() (Fault, error) {
	if f.Mode == "" {
		f.Mode = Healthy
	}
	switch f.Mode {
	case Healthy, Slow, Hang, ServerError, TooManyRequests, Flapping:
	default:
		return f, &fieldError{"mode", fmt.Sprintf("unknown mode %q: want healthy, slow, hang, server_error, too_many_requests or flapping", f.Mode)}
	}
	switch {
	case f.Delay < 0:
		return f, &fieldError{"delay", "must not be negative"}
	case f.Mode == Slow && f.Delay == 0:
		return f, &fieldError{"delay", "slow needs a delay"}
	case f.RetryAfter < 0:
		return f, &fieldError{"retry_after", "must not be negative"}
	case f.FlapEvery < 0:
		return f, &fieldError{"flap_every", "must not be negative"}
	case f.Status != 0 && (f.Status < 500 || f.Status > 599):
		return f, &fieldError{"status", "must be 500 to 599"}
	}
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	if f.FlapEvery == 0 {
		f.FlapEvery = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	return f, nil
}

// SetFault switches how the vendor answers from now on; requests already held
// keep the fault they met. It returns an error naming the field of a bad Fault
// and then changes nothing.
func (v *Vendor) SetFault(f Fault) error {
	f, err := f.withDefaults()
	if err != nil {
		return fmt.Errorf("fakevendor: fault %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fault, v.faultSet, v.flapped = f, time.Now(), 0
	v.limitEnd = v.faultSet.Add(f.RetryAfter)
	v.notify()
	return nil
}

// Fault returns the current fault, defaults filled in.
func (v *Vendor) Fault() Fault {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, _ := v.fault.withDefaults()
	return f
}

// verdict is what the current fault decides for one request.
type verdict struct {
	status     int           // answer this instead of serving, when not zero
	retryAfter string        // with this Retry-After header
	hold       time.Duration // hold the request this long first (Slow)
	hang       bool          // hold it until the client or Close ends it
}

// judge applies the current fault to one request.
func (v *Vendor) judge(now time.Time) verdict {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, _ := v.fault.withDefaults()
	switch f.Mode {
	case Slow:
		return verdict{hold: f.Delay}
	case Hang:
		return verdict{hang: true}
	case ServerError:
		return verdict{status: f.Status}
	case TooManyRequests:
		if now.Before(v.limitEnd) {
			wait := v.limitEnd.Sub(now)
			secs := int64((wait + time.Second - 1) / time.Second)
			return verdict{status: http.StatusTooManyRequests, retryAfter: strconv.FormatInt(secs, 10)}
		}
		v.limitEnd = now.Add(f.RetryAfter)
	case Flapping:
		n := v.flapped
		v.flapped++
		if (n/f.FlapEvery)%2 == 0 {
			return verdict{status: f.Status}
		}
	}
	return verdict{}
}

func (v *Vendor) getFault(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, toJSON(v.Fault()))
}

// postFault switches the fault: POST /faults {"mode": "slow", "delay_ms": 800}.
func (v *Vendor) postFault(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body too large", "")
		return
	}
	var in faultJSON
	if err := decodeStrict(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	f := Fault{Mode: in.Mode, Delay: time.Duration(in.DelayMS) * time.Millisecond,
		RetryAfter: time.Duration(in.RetryAfterMS) * time.Millisecond, FlapEvery: in.FlapEvery, Status: in.Status}
	if err := v.SetFault(f); err != nil {
		field := ""
		if fe := (*fieldError)(nil); errors.As(err, &fe) {
			field = wireField(fe.field)
		}
		writeError(w, http.StatusBadRequest, err.Error(), field)
		return
	}
	v.log.Info("fakevendor fault", "mode", string(f.Mode))
	writeJSON(w, http.StatusOK, toJSON(v.Fault()))
}

// wireField names a Fault field as POST /faults spells it.
func wireField(f string) string {
	switch f {
	case "delay", "retry_after":
		return f + "_ms"
	}
	return f
}

// toJSON shows the settings f's mode uses, defaults filled in.
func toJSON(f Fault) faultJSON {
	out := faultJSON{Mode: f.Mode}
	switch f.Mode {
	case Slow:
		out.DelayMS = f.Delay.Milliseconds()
	case TooManyRequests:
		out.RetryAfterMS = f.RetryAfter.Milliseconds()
	case ServerError:
		out.Status = f.Status
	case Flapping:
		out.FlapEvery, out.Status = f.FlapEvery, f.Status
	}
	return out
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("bad JSON: data after the value")
	}
	return nil
}
