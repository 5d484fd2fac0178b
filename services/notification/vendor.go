package notification

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trialhub/trialhub/services/platform/client"
)

// Push is one message to one device, as the vendor receives it: the push token,
// the template code and the rendered, non-personal text.
type Push struct {
	Token    string
	Template string
	Title    string
	Body     string
	// Data is what the app receives with the push: the notification id (to
	// report it opened) and the priority.
	Data map[string]string
}

// Vendor sends pushes. Send's error is a *VendorError or wraps client.ErrOpen.
type Vendor interface {
	Send(ctx context.Context, idempotencyKey string, p Push) error
}

// Outcome is how the vendor judged one push.
type Outcome string

// The outcomes of a push (the values of notification_vendor_requests_total's
// outcome label, with "accepted" and "breaker_open").
const (
	Transient     Outcome = "transient"     // timeout, transport error, 429, 5xx: retry
	TokenInvalid  Outcome = "token_invalid" // the device is gone: erase its token
	Rejected      Outcome = "rejected"      // the message itself was refused
	OutcomeOK     Outcome = "accepted"      // the vendor took it
	OutcomeOpen   Outcome = "breaker_open"  // not sent: the breaker is open
	OutcomeBulked Outcome = "bulkhead_full" // not sent: no vendor slot in time
)

// VendorError is a failed push, sanitised: an HTTP status or a transport
// failure and the vendor's error code or field, never a URL, a token or text.
type VendorError struct {
	Outcome    Outcome
	Status     int           // HTTP status; 0 for transport failures
	Code       string        // the vendor's error code or failing field, if it gave one
	Cause      string        // "timeout", "transport" for transport failures
	RetryAfter time.Duration // the vendor's Retry-After, if any
}

func (e *VendorError) Error() string {
	var b strings.Builder
	b.WriteString("push vendor: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	} else {
		b.WriteString(e.Cause)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	return b.String()
}

// httpVendor posts {"token", "template", "params"} to {base}/push with an
// Idempotency-Key header, so the kit's client retries it safely and the vendor
// delivers it once.
type httpVendor struct {
	client httpDo
	base   string
}

// NewHTTPVendor returns the push vendor client over c (from Mount.HTTP: the
// dependency's timeout, retries, Retry-After and breaker) at base.
func NewHTTPVendor(c *http.Client, base string) Vendor { return &httpVendor{client: c, base: base} }

var codeChars = func(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
}

// Send implements Vendor.
func (h *httpVendor) Send(ctx context.Context, key string, p Push) error {
	if h.base == "" {
		return &VendorError{Outcome: Transient, Cause: "no push vendor URL configured (TRIALHUB_PUSH_VENDOR_URL)"}
	}
	params := map[string]string{"title": p.Title, "body": p.Body}
	for k, v := range p.Data {
		params[k] = v
	}
	body, err := json.Marshal(map[string]any{"token": p.Token, "template": p.Template, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.base, "/")+"/push", bytes.NewReader(body))
	if err != nil {
		return &VendorError{Outcome: Rejected, Cause: "bad vendor URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := h.client.Do(req)
	if err != nil {
		if errors.Is(err, client.ErrOpen) {
			return err
		}
		// Never err.Error(): a *url.Error names the endpoint.
		cause := "transport error"
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			cause = "timeout"
		}
		return &VendorError{Outcome: Transient, Cause: cause}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 8192))
	if res.StatusCode/100 == 2 {
		return nil
	}
	ve := &VendorError{Status: res.StatusCode, Code: vendorCode(raw)}
	if ra := res.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			ve.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			ve.RetryAfter = time.Until(t)
		}
	}
	switch {
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 || res.StatusCode == http.StatusRequestTimeout:
		ve.Outcome = Transient
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusGone ||
		res.StatusCode == http.StatusBadRequest && ve.Code == "token":
		ve.Outcome = TokenInvalid
	default:
		ve.Outcome = Rejected
	}
	return ve
}

// vendorCode is the vendor's error code or failing field from its JSON error
// body ({"code": ...} or {"field": ...}), reduced to an identifier: the body's
// message is free text and is never kept.
func vendorCode(raw []byte) string {
	var e struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	c := e.Code
	if c == "" {
		c = e.Field
	}
	if len(c) > 64 || strings.IndexFunc(c, codeChars) >= 0 {
		return ""
	}
	return c
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// sanitise is what last_error keeps of a delivery error: a VendorError's own
// text (status, code, cause) or a fixed phrase, at most 1024 characters.
func sanitise(err error) string {
	var ve *VendorError
	var s string
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ve):
		s = ve.Error()
	case errors.Is(err, client.ErrOpen):
		s = "push vendor: circuit breaker open"
	case errors.Is(err, context.DeadlineExceeded):
		s = "push vendor: timeout"
	default:
		s = "delivery error"
	}
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}
