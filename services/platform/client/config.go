package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FromEnv overrides dep's settings from environment variables named after the
// dependency (12-factor config), so each dependency is tuned on its own:
//
//	TRIALHUB_<NAME>_URL                    base URL
//	TRIALHUB_<NAME>_PROTOCOL               "grpc", "connect" or "grpcweb" (grpc)
//	TRIALHUB_<NAME>_TIMEOUT                whole-call timeout, a Go duration ("2s", "500ms")
//	TRIALHUB_<NAME>_MAX_ATTEMPTS           attempts per call, the first included (1 = no retries)
//	TRIALHUB_<NAME>_BACKOFF_BASE           backoff ceiling of the first retry ("50ms")
//	TRIALHUB_<NAME>_BACKOFF_MAX            longest wait between attempts ("1s")
//	TRIALHUB_<NAME>_RETRY_BUDGET           fraction of calls that may be retried (0.2)
//	TRIALHUB_<NAME>_BREAKER_FAILURE_RATIO  failure ratio that opens the breaker (0.5)
//	TRIALHUB_<NAME>_BREAKER_MIN_CALLS      calls in the window before the ratio counts (10)
//	TRIALHUB_<NAME>_BREAKER_WINDOW         rolling window calls are counted in ("10s")
//	TRIALHUB_<NAME>_BREAKER_OPEN_FOR       how long the breaker stays open ("5s")
//	TRIALHUB_<NAME>_BREAKER_PROBES         calls a half-open breaker lets through (1)
//	TRIALHUB_<NAME>_BREAKER_DISABLED       "true" turns the breaker off
//
// <NAME> is dep.Name upper-cased with '-' as '_': "push-vendor" reads
// TRIALHUB_PUSH_VENDOR_TIMEOUT. Unset variables keep dep's values (and so the
// defaults of Service and Vendor). A value that does not parse, or is out of
// range, is an error naming the variable; all such errors are reported at once.
// lookup is os.LookupEnv in production.
func FromEnv(dep Dependency, lookup func(string) (string, bool)) (Dependency, error) {
	prefix := "TRIALHUB_" + strings.ToUpper(strings.ReplaceAll(dep.Name, "-", "_")) + "_"
	var errs []string
	get := func(key string, parse func(string) error) {
		v, ok := lookup(prefix + key)
		if !ok || v == "" {
			return
		}
		if err := parse(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s%s=%q: %v", prefix, key, v, err))
		}
	}
	duration := func(dst *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d <= 0 {
				err = fmt.Errorf("must be positive")
			}
			*dst = d
			return err
		}
	}
	ratio := func(dst *float64) func(string) error {
		return func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && (f <= 0 || f > 1) {
				err = fmt.Errorf("must be in (0, 1]")
			}
			*dst = f
			return err
		}
	}
	get("URL", func(v string) error { dep.BaseURL = v; return nil })
	get("PROTOCOL", func(v string) error {
		p, err := parseProtocol(v)
		dep.Protocol = p
		return err
	})
	get("TIMEOUT", duration(&dep.Timeout))
	get("MAX_ATTEMPTS", func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && (n < 1 || n > 10) {
			err = fmt.Errorf("must be 1 to 10")
		}
		dep.MaxAttempts = n
		return err
	})
	get("BACKOFF_BASE", duration(&dep.BackoffBase))
	get("BACKOFF_MAX", duration(&dep.BackoffMax))
	get("RETRY_BUDGET", ratio(&dep.RetryBudget))
	get("BREAKER_FAILURE_RATIO", ratio(&dep.Breaker.FailureRatio))
	get("BREAKER_MIN_CALLS", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		dep.Breaker.MinCalls = uint32(n)
		return err
	})
	get("BREAKER_WINDOW", duration(&dep.Breaker.Window))
	get("BREAKER_OPEN_FOR", duration(&dep.Breaker.OpenFor))
	get("BREAKER_PROBES", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err == nil && n == 0 {
			err = fmt.Errorf("must be at least 1")
		}
		dep.Breaker.Probes = uint32(n)
		return err
	})
	get("BREAKER_DISABLED", func(v string) error {
		b, err := strconv.ParseBool(v)
		dep.Breaker.Disabled = b
		return err
	})
	if len(errs) > 0 {
		return dep, fmt.Errorf("dependency %s config: %s", dep.Name, strings.Join(errs, "; "))
	}
	return dep, nil
}
