package logs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/logs"
)

// capture is a logger writing JSON through the redacting handler, and the lines
// it wrote.
type capture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	reasons []string
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func newCapture(opts ...logs.Option) (*slog.Logger, *capture) {
	c := &capture{}
	opts = append(opts, logs.WithOnRedact(func(key, reason string) {
		c.mu.Lock()
		c.reasons = append(c.reasons, key+":"+reason)
		c.mu.Unlock()
	}))
	inner := slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(logs.NewHandler(inner, opts...)), c
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// line is the one line logged, decoded.
func (c *capture) line(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	lines := strings.Split(strings.TrimSpace(c.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines logged, want 1:\n%s", len(lines), c.String())
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	return m
}

const (
	jwt      = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIwYjZlIiwicm9sZSI6IlBBVElFTlQifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	e164     = "+31612345678"
	national = "0612345678"
	bsn      = "123456782"
	email    = "jan.jansen@example.nl"
)

func TestSecretTypeNeverRenders(t *testing.T) {
	s := logs.Secret("hunter2-activation-ABC123")
	for _, got := range []string{
		fmt.Sprint(s), fmt.Sprintf("%s %v %q %x %#v %+v", s, s, s, s, s, s), s.String(),
		fmt.Sprintf("%v", struct{ P logs.Secret }{s}), fmt.Errorf("login %s: %w", s, errors.New("x")).Error(),
	} {
		if strings.Contains(got, "hunter2") {
			t.Errorf("rendered %q", got)
		}
	}
	b, _ := json.Marshal(struct {
		Password logs.Secret `json:"pw"`
	}{s})
	if string(b) != `{"pw":"[redacted]"}` {
		t.Errorf("JSON %s", b)
	}
	if s.Reveal() != "hunter2-activation-ABC123" {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	// Even through a plain slog handler, without NewHandler.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "credential", s)
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), `"credential":"[redacted]"`) {
		t.Errorf("plain JSON handler wrote %s", buf.String())
	}
}

func TestHandlerRefusesSecretKeys(t *testing.T) {
	for _, key := range []string{
		"password", "new_password", "Password", "access_token", "refresh-token", "token", "authorization",
		"activation_code", "code", "otp", "mobile", "mobile_number", "phone", "national_id", "answer",
		"answers", "free_text", "email", "name", "first_name", "family_name", "api_key", "cookie",
	} {
		t.Run(key, func(t *testing.T) {
			log, c := newCapture()
			log.Info("event", key, "v4lue-that-must-not-appear", "request_id", "R1")
			m := c.line(t)
			if m[key] != logs.Redacted || strings.Contains(c.String(), "v4lue") {
				t.Errorf("%s logged as %v: %s", key, m[key], c.String())
			}
			if m["request_id"] != "R1" {
				t.Errorf("request_id %v, want kept", m["request_id"])
			}
			if len(c.reasons) != 1 || c.reasons[0] != key+":key" {
				t.Errorf("OnRedact saw %v, want [%s:key]", c.reasons, key)
			}
		})
	}
	t.Run("integer and group", func(t *testing.T) {
		log, c := newCapture()
		log.Info("event", "activation_code", 834512, slog.Group("patient", "mobile", 31612345678, "subject_uuid", "0b6e"),
			slog.Group("password", "old", "x1y2z3"))
		out := c.String()
		if strings.Contains(out, "834512") || strings.Contains(out, "31612345678") || strings.Contains(out, "x1y2z3") {
			t.Errorf("logged %s", out)
		}
		if !strings.Contains(out, `"subject_uuid":"0b6e"`) {
			t.Errorf("subject_uuid lost in %s", out)
		}
	})
}

func TestHandlerRefusesSecretShapes(t *testing.T) {
	for _, c := range []struct{ name, value, reason string }{
		{"jwt", "Bearer " + jwt, "jwt"},
		{"e164", "sms to " + e164 + " failed", "phone"},
		{"e164 spaced", "sms to +31 6 1234 5678", "phone"},
		{"national mobile", "sms to " + national, "number"},
		{"national mobile dashed", "sms to 06-12345678", "number"},
		{"national id", "subject " + bsn, "number"},
		{"email", "invite " + email, "email"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log, capt := newCapture()
			err := errors.New("vendor: " + c.value)
			log.Info("rpc "+c.value, "detail", c.value, "error", err, slog.Any("payload", struct{ To string }{c.value}))
			out := capt.String()
			secret := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(c.value, "Bearer "), "sms to "), "subject "), "invite ")
			secret = strings.TrimSuffix(secret, " failed")
			if strings.Contains(out, secret) {
				t.Errorf("%q appears in %s", secret, out)
			}
			m := capt.line(t)
			if !strings.Contains(fmt.Sprint(m["detail"]), logs.Redacted) || !strings.Contains(fmt.Sprint(m["msg"]), logs.Redacted) {
				t.Errorf("msg %v, detail %v: want [redacted] in place of the secret", m["msg"], m["detail"])
			}
			if len(capt.reasons) != 4 || capt.reasons[0] != "msg:"+c.reason {
				t.Errorf("OnRedact saw %v, want msg, detail, error and payload with reason %s", capt.reasons, c.reason)
			}
		})
	}
}

// TestHandlerKeepsWhatLogsAreFor: the rpc line's fields, ids, codes, times and
// numbers that are not secrets pass untouched.
func TestHandlerKeepsWhatLogsAreFor(t *testing.T) {
	log, c := newCapture()
	kept := map[string]any{
		"request_id":   "KQ3VZ4XW7TQ5MLSJ2V6YHPGNOA",
		"procedure":    "/trialhub.epro.v1.EproService/SubmitResponse",
		"code":         "not_found",
		"trace_id":     "0af7651916cd43dd8448eb211c80319c",
		"span_id":      "b7ad6b7169203331",
		"subject_uuid": "0b6e9d4c-1f2a-4e5b-9c3d-123456789012",
		"service":      "epro",
		"when":         "2026-12-01 20:36:59",
		"stamp":        "2026-12-01T20:36:59.123456789Z",
		"version":      "1.23.456789012",
		"path":         "/v1/jobs/123456789",
		"job":          "river:deliver:1234567890",
		"addr":         "10.0.0.12:8080",
		"note":         "retry 3 of 25 after 500 ms",
	}
	args := []any{"duration_ms", 12.5, "http_status_code", 503, "attempt", 123456789012}
	for k, v := range kept {
		args = append(args, k, v)
	}
	log.Warn("rpc", args...)
	m := c.line(t)
	for k, v := range kept {
		if m[k] != v {
			t.Errorf("%s = %v, want %v kept", k, m[k], v)
		}
	}
	if m["http_status_code"] != float64(503) || m["duration_ms"] != 12.5 || m["attempt"] != float64(123456789012) {
		t.Errorf("numbers changed: %v %v %v", m["http_status_code"], m["duration_ms"], m["attempt"])
	}
	if len(c.reasons) != 0 {
		t.Errorf("redacted %v, want nothing", c.reasons)
	}
}

func TestHandlerWithAttrsAndLevel(t *testing.T) {
	var level slog.LevelVar
	log, c := newCapture(logs.WithLevel(&level))
	log = log.With("access_token", jwt, "service", "patient").WithGroup("call")
	log.Debug("not logged at info")
	log.Info("login", "refresh_token", "opaque-refresh-xyz")
	out := c.String()
	if strings.Contains(out, "not logged") {
		t.Errorf("debug line at level info: %s", out)
	}
	if strings.Contains(out, jwt) || strings.Contains(out, "opaque-refresh-xyz") || !strings.Contains(out, `"service":"patient"`) {
		t.Errorf("logged %s", out)
	}
	level.Set(slog.LevelDebug)
	log.Debug("now logged")
	if !strings.Contains(c.String(), "now logged") {
		t.Error("debug line not logged after the level changed to debug")
	}
	if !log.Handler().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled(debug) false at level debug")
	}
}

func TestHandlerAddsTheSpanOfTheContext(t *testing.T) {
	log, c := newCapture()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:  trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
	})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "rpc")
	m := c.line(t)
	if m["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || m["span_id"] != "b7ad6b7169203331" {
		t.Errorf("trace_id %v span_id %v, want the context's span", m["trace_id"], m["span_id"])
	}
	log2, c2 := newCapture()
	log2.InfoContext(context.Background(), "no span")
	if m := c2.line(t); m["trace_id"] != nil {
		t.Errorf("trace_id %v without a span", m["trace_id"])
	}
}
