package patient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/jobs"
)

// SMSSender sends one text message. The vendor behind it is reached with
// client.HTTP (timeout, safe retries, breaker).
type SMSSender interface {
	Send(ctx context.Context, idempotencyKey, to, text string) error
}

// httpSMS posts {"to": E.164, "text": ...} to {base}/sms with an
// Idempotency-Key header, so the kit's client may retry it safely and the
// vendor sends it once.
type httpSMS struct {
	client *http.Client
	base   string
	log    *slog.Logger
}

// NewSMSSender returns the SMS vendor client over c (from Mount.HTTP). The base
// URL is set by the service from its configuration.
func NewSMSSender(c *http.Client, log *slog.Logger) *httpSMS { return &httpSMS{client: c, log: log} }

// Send implements SMSSender.
func (h *httpSMS) Send(ctx context.Context, key, to, text string) error {
	if h.base == "" {
		return fmt.Errorf("sms vendor: no URL configured (TRIALHUB_SMS_VENDOR_URL)")
	}
	body, err := json.Marshal(map[string]string{"to": to, "text": text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.base, "/")+"/sms", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("sms vendor: %w", err) // the error names no number: URL and cause only
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("sms vendor answered %s", res.Status)
	}
	return nil
}

// SendSMS is the River job that sends a registration's message. Its args name
// the registration only: the mobile and the code are never stored in river_job.
// The worker reads the mobile from the vault; the code is not kept anywhere in
// clear, so the job carries it sealed (AES-GCM under the current data key).
type SendSMS struct {
	RegistrationID string `json:"registration_id"`
	// SealedText is the message, sealed to this registration.
	SealedText []byte `json:"sealed_text"`
}

// Kind implements river.JobArgs.
func (SendSMS) Kind() string { return "patient.send_sms" }

type smsWorker struct {
	river.WorkerDefaults[SendSMS]
	s      *Service
	sender SMSSender
}

func (w *smsWorker) Work(ctx context.Context, job *river.Job[SendSMS]) error {
	reg, err := w.s.ent.Registration.Get(ctx, job.Args.RegistrationID)
	if err != nil {
		return fmt.Errorf("registration %s: %w", job.Args.RegistrationID, err)
	}
	mobile, err := w.s.pii.open("registrations", "mobile", reg.ID, reg.MobileEnc)
	if err != nil {
		return fmt.Errorf("registration %s: %w", reg.ID, err)
	}
	text, err := w.s.pii.open("sms", "text", reg.ID, job.Args.SealedText)
	if err != nil {
		return fmt.Errorf("registration %s: %w", reg.ID, err)
	}
	return w.sender.Send(ctx, jobs.Key(job.JobRow), mobile, text)
}
