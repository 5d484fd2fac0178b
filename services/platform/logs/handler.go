package logs

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Option configures NewHandler.
type Option func(*Handler)

// WithLevel makes the handler log records at level l's Level and above; pass a
// *slog.LevelVar to change it at runtime (see LevelHandler). Default: what the
// wrapped handler enables.
func WithLevel(l slog.Leveler) Option { return func(h *Handler) { h.level = l } }

// WithOnRedact calls fn for every value the handler refuses, with the attribute's
// key ("msg" for the message) and the reason: "key", "jwt", "email", "phone",
// "number". fn must be quick and safe for concurrent use (say, a Prometheus
// counter). It never sees the value. Default: none.
func WithOnRedact(fn func(key, reason string)) Option { return func(h *Handler) { h.onRedact = fn } }

// Handler is a slog.Handler that refuses secrets before the handler it wraps sees
// them. See NewHandler.
type Handler struct {
	inner    slog.Handler
	level    slog.Leveler
	onRedact func(key, reason string)
}

// NewHandler wraps inner (the process's JSON handler on stdout) so that no record
// or attribute it receives carries a secret:
//
//   - an attribute whose key names a secret is logged as "[redacted]", whatever
//     its value: password, passwd, passphrase, secret, token (access_token,
//     refresh_token, ...), jwt, authorization, cookie, api_key, otp, pin, code
//     (activation_code, ...), mobile(_number), phone(_number), telephone, msisdn, email, national_id, nin, ssn,
//     bsn, answer(s), free_text, date_of_birth, and name, first_name, last_name,
//     full_name, given_name, family_name. A key matches when it is one of these or
//     ends in _ and one (keys are compared in lower case, with - . and space as
//     _). A "code" whose value is a Connect code name (not_found) or an integer
//     below 1000 (an HTTP status) is kept: the rpc line's code is one;
//   - in every other string, error text, fmt.Stringer and the message, what looks
//     like a JWT (eyJ... three base64url parts), an e-mail address, a phone
//     number (+ and 7 to 15 digits) or a run of 9 to 15 digits not part of an id
//     (a national phone number or national id) is replaced by "[redacted]";
//   - a Secret, or any slog.LogValuer, is resolved first, so it logs as it says.
//
// A record logged with a context that holds an OpenTelemetry span (every call
// inside the telemetry interceptor, every traced job) gets trace_id and span_id,
// unless it has a trace_id of its own.
//
// Groups are searched too. The handler is safe for concurrent use if inner is.
func NewHandler(inner slog.Handler, opts ...Option) *Handler {
	h := &Handler{inner: inner}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Enabled reports whether a record at l is logged.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.level != nil && l < h.level.Level() {
		return false
	}
	return h.inner.Enabled(ctx, l)
}

// Handle redacts the record's message and attributes and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	msg, reason := scrub(r.Message)
	if reason != "" {
		h.redacted("msg", reason)
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	hasTrace := false
	r.Attrs(func(a slog.Attr) bool {
		hasTrace = hasTrace || a.Key == "trace_id"
		out.AddAttrs(h.attr(a))
		return true
	})
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !hasTrace {
		out.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, out)
}

// WithAttrs redacts attrs once, here, and passes them on.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(clean), level: h.level, onRedact: h.onRedact}
}

// WithGroup passes the group on.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), level: h.level, onRedact: h.onRedact}
}

func (h *Handler) redacted(key, reason string) {
	if h.onRedact != nil {
		h.onRedact(key, reason)
	}
}

func (h *Handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if secretKey(a.Key) {
			h.redacted(a.Key, "key")
			return slog.String(a.Key, Redacted)
		}
		attrs := v.Group()
		clean := make([]slog.Attr, len(attrs))
		for i, g := range attrs {
			clean[i] = h.attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	}
	if secretKey(a.Key) && !harmlessCode(a.Key, v) {
		h.redacted(a.Key, "key")
		return slog.String(a.Key, Redacted)
	}
	var text string
	switch v.Kind() {
	case slog.KindString:
		text = v.String()
	case slog.KindAny:
		text = anyText(v.Any())
	default:
		return slog.Attr{Key: a.Key, Value: v} // numbers, bools, times, durations
	}
	clean, reason := scrub(text)
	if reason == "" {
		return slog.Attr{Key: a.Key, Value: v}
	}
	h.redacted(a.Key, reason)
	return slog.String(a.Key, clean)
}

// anyText is how a handler would render x, for scanning.
func anyText(x any) string {
	switch x := x.(type) {
	case nil:
		return ""
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	case []byte:
		return string(x)
	default:
		return fmt.Sprintf("%+v", x)
	}
}

var (
	secretWords = []string{
		"password", "passwd", "passphrase", "secret", "token", "jwt", "authorization", "cookie",
		"api_key", "apikey", "otp", "pin", "code", "mobile", "mobile_number", "phone", "phone_number", "telephone", "msisdn", "email",
		"national_id", "nin", "ssn", "bsn", "answer", "answers", "free_text", "date_of_birth", "dob",
	}
	secretNames = map[string]bool{
		"name": true, "first_name": true, "last_name": true, "full_name": true,
		"given_name": true, "family_name": true, "surname": true, "patient_name": true,
	}
	keyReplacer = strings.NewReplacer("-", "_", ".", "_", " ", "_")
)

// secretKey reports whether an attribute key names a secret.
func secretKey(key string) bool {
	k := keyReplacer.Replace(strings.ToLower(key))
	if secretNames[k] {
		return true
	}
	for _, w := range secretWords {
		if strings.HasSuffix(k, w) && (len(k) == len(w) || k[len(k)-len(w)-1] == '_') {
			return true
		}
	}
	return false
}

// connectCodes are the Connect code names, which a "code" attribute may carry.
var connectCodes = map[string]bool{
	"ok": true, "canceled": true, "unknown": true, "invalid_argument": true, "deadline_exceeded": true,
	"not_found": true, "already_exists": true, "permission_denied": true, "resource_exhausted": true,
	"failed_precondition": true, "aborted": true, "out_of_range": true, "unimplemented": true,
	"internal": true, "unavailable": true, "data_loss": true, "unauthenticated": true,
}

// harmlessCode reports whether a *code attribute holds a status rather than a
// secret code: a Connect code name, or an integer below 1000 (an HTTP status).
func harmlessCode(key string, v slog.Value) bool {
	k := keyReplacer.Replace(strings.ToLower(key))
	if k != "code" && !strings.HasSuffix(k, "_code") {
		return false
	}
	switch v.Kind() {
	case slog.KindString:
		return connectCodes[v.String()]
	case slog.KindInt64:
		return v.Int64() >= 0 && v.Int64() < 1000
	case slog.KindUint64:
		return v.Uint64() < 1000
	}
	return false
}

var (
	jwtPattern   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
)

// scrub replaces the secrets in s and says why (the first reason), or returns s
// and "".
func scrub(s string) (string, string) {
	if s == "" {
		return s, ""
	}
	reason := ""
	// The cheap tests first: most strings have neither "eyJ" nor "@".
	if strings.Contains(s, "eyJ") && jwtPattern.MatchString(s) {
		s, reason = jwtPattern.ReplaceAllString(s, Redacted), "jwt"
	}
	if strings.IndexByte(s, '@') >= 0 && emailPattern.MatchString(s) {
		s = emailPattern.ReplaceAllString(s, Redacted)
		reason = cmpOr(reason, "email")
	}
	if out, why := scrubNumbers(s); why != "" {
		s, reason = out, cmpOr(reason, why)
	}
	return s, reason
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// scrubNumbers replaces phone numbers and long numbers: "+" and 7 to 15 digits
// ("phone"), or 9 to 15 digits ("number"), with single spaces, dashes or
// parentheses between digits allowed, that do not touch a letter, digit, _ . : /
// or - on either side (so ids, UUIDs, hashes, versions, dates with times and
// paths are left alone).
func scrubNumbers(s string) (string, string) {
	var b strings.Builder
	reason := ""
	last := 0
	for i := 0; i < len(s); {
		start := i
		plus := s[i] == '+'
		if plus {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) || (start > 0 && glued(s[start-1])) {
			i = start + 1
			continue
		}
		digits, end := 0, i
		for j := i; j < len(s); j++ {
			c := s[j]
			if isDigit(c) {
				digits++
				end = j + 1
				continue
			}
			if (c == ' ' || c == '-' || c == '(' || c == ')') && j+1 < len(s) && (isDigit(s[j+1]) || s[j+1] == '(') {
				continue
			}
			break
		}
		i = end
		if end < len(s) && glued(s[end]) {
			// Part of something longer (an id, a time): skip the whole token.
			for i < len(s) && !isSpace(s[i]) {
				i++
			}
			continue
		}
		why := ""
		switch {
		case plus && digits >= 7 && digits <= 15:
			why = "phone"
		case !plus && digits >= 9 && digits <= 15:
			why = "number"
		}
		if why == "" {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last = end
		reason = cmpOr(reason, why)
	}
	if reason == "" {
		return s, ""
	}
	b.WriteString(s[last:])
	return b.String(), reason
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// glued reports whether c next to a number makes it part of a longer token.
func glued(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '.' || c == ':' || c == '/' || c == '-' || c == '+'
}
