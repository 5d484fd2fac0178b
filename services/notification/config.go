package notification

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the service's own settings; the kit's (address, database, the
// dependencies' timeouts, retries and breakers: TRIALHUB_PUSH_VENDOR_TIMEOUT ...)
// are platform.Config's and client.FromEnv's.
type Config struct {
	// PushURL is the push vendor's base URL (POST {PushURL}/push).
	// TRIALHUB_PUSH_VENDOR_URL; required to deliver.
	PushURL string
	// Vendor replaces the HTTP push vendor (tests); nil means NewHTTPVendor.
	Vendor Vendor
	// EscalateAfter is how long a safety alert may stay unacknowledged before it
	// escalates to the next level. TRIALHUB_NOTIFICATION_ESCALATE_AFTER, default 30m.
	EscalateAfter time.Duration
	// VendorConcurrency bounds the vendor calls in flight per process (the
	// bulkhead): a hanging vendor holds at most this many goroutines and
	// connections. TRIALHUB_NOTIFICATION_VENDOR_CONCURRENCY, default 8.
	VendorConcurrency int
	// Workers is how many delivery jobs one process works at once (River's
	// MaxWorkers of DeliveryQueue). TRIALHUB_NOTIFICATION_WORKERS, default 8.
	Workers int
	// MaxAttempts is a delivery's retry budget: after this many attempts that
	// failed transiently it is DEAD. TRIALHUB_NOTIFICATION_MAX_ATTEMPTS, default 12.
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff with full jitter
	// between attempts (a vendor's Retry-After is honoured when longer).
	// TRIALHUB_NOTIFICATION_RETRY_BASE (2s), TRIALHUB_NOTIFICATION_RETRY_MAX (15m).
	RetryBase, RetryMax time.Duration
	// BreakerWait is how long a job waits when the vendor's circuit breaker is
	// open before it asks again (a snooze: it costs no attempt).
	// TRIALHUB_NOTIFICATION_BREAKER_WAIT, default 5s.
	BreakerWait time.Duration
	// PollEvery is how often reminders are planned from the trial service's
	// worklist; 0 turns planning off. TRIALHUB_NOTIFICATION_POLL_EVERY, default 30s.
	PollEvery time.Duration
	// ReminderHour is the local hour (site time zone) of the day a window opens
	// at which its reminder goes. TRIALHUB_NOTIFICATION_REMINDER_HOUR, default 9.
	ReminderHour int
	// ReconcileEvery is how often notifications whose delivery job River
	// discarded without a recorded end are marked DEAD.
	// TRIALHUB_NOTIFICATION_RECONCILE_EVERY, default 1m.
	ReconcileEvery time.Duration
	// ClosingLead is how long before a window closes the "closes soon" reminder
	// goes. TRIALHUB_NOTIFICATION_CLOSING_LEAD, default 24h.
	ClosingLead time.Duration
}

// Option changes the Config Platform mounts with, after the environment.
type Option func(*Config)

// WithPushURL sets Config.PushURL.
func WithPushURL(url string) Option { return func(c *Config) { c.PushURL = url } }

// WithVendor sets Config.Vendor.
func WithVendor(v Vendor) Option { return func(c *Config) { c.Vendor = v } }

// WithEscalateAfter sets Config.EscalateAfter.
func WithEscalateAfter(d time.Duration) Option { return func(c *Config) { c.EscalateAfter = d } }

// WithVendorConcurrency sets Config.VendorConcurrency.
func WithVendorConcurrency(n int) Option { return func(c *Config) { c.VendorConcurrency = n } }

// WithWorkers sets Config.Workers.
func WithWorkers(n int) Option { return func(c *Config) { c.Workers = n } }

// WithMaxAttempts sets Config.MaxAttempts.
func WithMaxAttempts(n int) Option { return func(c *Config) { c.MaxAttempts = n } }

// WithRetryBackoff sets Config.RetryBase and Config.RetryMax.
func WithRetryBackoff(base, max time.Duration) Option {
	return func(c *Config) { c.RetryBase, c.RetryMax = base, max }
}

// WithBreakerWait sets Config.BreakerWait.
func WithBreakerWait(d time.Duration) Option { return func(c *Config) { c.BreakerWait = d } }

// WithPollEvery sets Config.PollEvery.
func WithPollEvery(d time.Duration) Option { return func(c *Config) { c.PollEvery = d } }

// WithReconcileEvery sets Config.ReconcileEvery.
func WithReconcileEvery(d time.Duration) Option { return func(c *Config) { c.ReconcileEvery = d } }

// WithReminders sets Config.ReminderHour and Config.ClosingLead.
func WithReminders(hour int, closingLead time.Duration) Option {
	return func(c *Config) { c.ReminderHour, c.ClosingLead = hour, closingLead }
}

var lookupEnv = os.LookupEnv

// ConfigFromEnv reads the TRIALHUB_* settings above; unset ones keep their zero
// value (the defaults apply at mount). A bad value is an error naming it.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []string
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	dur := func(k string, dst *time.Duration) {
		if v := get(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a duration such as 30m", k, v))
			}
			*dst = d
		}
	}
	num := func(k string, dst *int) {
		if v := get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive number", k, v))
			}
			*dst = n
		}
	}
	c.PushURL = get("TRIALHUB_PUSH_VENDOR_URL")
	dur("TRIALHUB_NOTIFICATION_ESCALATE_AFTER", &c.EscalateAfter)
	num("TRIALHUB_NOTIFICATION_VENDOR_CONCURRENCY", &c.VendorConcurrency)
	num("TRIALHUB_NOTIFICATION_WORKERS", &c.Workers)
	num("TRIALHUB_NOTIFICATION_MAX_ATTEMPTS", &c.MaxAttempts)
	dur("TRIALHUB_NOTIFICATION_RETRY_BASE", &c.RetryBase)
	dur("TRIALHUB_NOTIFICATION_RETRY_MAX", &c.RetryMax)
	dur("TRIALHUB_NOTIFICATION_BREAKER_WAIT", &c.BreakerWait)
	c.PollEvery = -1
	dur("TRIALHUB_NOTIFICATION_POLL_EVERY", &c.PollEvery)
	c.ReminderHour = -1
	num("TRIALHUB_NOTIFICATION_REMINDER_HOUR", &c.ReminderHour)
	dur("TRIALHUB_NOTIFICATION_CLOSING_LEAD", &c.ClosingLead)
	dur("TRIALHUB_NOTIFICATION_RECONCILE_EVERY", &c.ReconcileEvery)
	if len(errs) > 0 {
		return c, fmt.Errorf("notification config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&c.EscalateAfter, 30*time.Minute)
	defInt(&c.VendorConcurrency, 8)
	defInt(&c.Workers, 8)
	defInt(&c.MaxAttempts, 12)
	def(&c.RetryBase, 2*time.Second)
	def(&c.RetryMax, 15*time.Minute)
	def(&c.BreakerWait, 5*time.Second)
	if c.PollEvery < 0 {
		c.PollEvery = 30 * time.Second
	}
	if c.ReminderHour < 0 {
		c.ReminderHour = 9
	}
	def(&c.ClosingLead, 24*time.Hour)
	def(&c.ReconcileEvery, time.Minute)
	if c.ReminderHour > 23 {
		return c, fmt.Errorf("notification config: reminder hour %d: want 0 to 23", c.ReminderHour)
	}
	if c.RetryMax < c.RetryBase {
		return c, fmt.Errorf("notification config: retry max %s is shorter than retry base %s", c.RetryMax, c.RetryBase)
	}
	return c, nil
}
