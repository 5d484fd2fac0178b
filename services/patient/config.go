package patient

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trialhub/trialhub/services/patient/internal/vault"
)

// Config holds the patient service's own settings. The kit's Mount has no
// configuration accessor, so they come from the environment (ConfigFromEnv);
// config.example.yaml documents them.
type Config struct {
	// MasterKey wraps the data keys and the signing keys. Env
	// TRIALHUB_PATIENT_MASTER_KEY (base64 of 32 bytes) or
	// TRIALHUB_PATIENT_MASTER_KEY_FILE (a file holding that). Required.
	MasterKey vault.MasterKey
	// PreviousMasterKeys are older master keys still accepted: at start every data
	// and signing key wrapped by one of them is re-wrapped under MasterKey. Env
	// TRIALHUB_PATIENT_PREVIOUS_MASTER_KEYS (comma-separated base64).
	PreviousMasterKeys []vault.MasterKey
	// Issuer is the iss claim of the tokens this service signs. Env
	// TRIALHUB_ISSUER. Default "trialhub".
	Issuer string
	// AccessTTL is the access-token lifetime. Env
	// TRIALHUB_PATIENT_ACCESS_TOKEN_TTL (a Go duration). Default 5m, at most 15m.
	AccessTTL time.Duration
	// RefreshTTL is how long a session lasts without signing in again. Env
	// TRIALHUB_PATIENT_REFRESH_TOKEN_TTL. Default 720h (30 days).
	RefreshTTL time.Duration
	// ActivationTTL is how long an activation code is accepted. Default 72h.
	ActivationTTL time.Duration
	// CodeTTL is how long an SMS verification code is accepted. Default 10m.
	CodeTTL time.Duration
	// LockoutWindow is the window in which failed sign-ins are counted, and how
	// long an identifier stays locked once they exceed LockoutAfter. Env
	// TRIALHUB_PATIENT_LOCKOUT_WINDOW. Default 15m.
	LockoutWindow time.Duration
	// SlowAfter failed sign-ins of one identifier in the window, each further
	// answer is delayed by 250 ms more (at most 2 s). Default 3.
	SlowAfter int
	// LockoutAfter failed sign-ins of one identifier in the window lock it. Env
	// TRIALHUB_PATIENT_LOCKOUT_AFTER. Default 10.
	LockoutAfter int
	// PerAddress is how many Register, activation and sign-in attempts one client
	// address may make per LockoutWindow. Env TRIALHUB_PATIENT_PER_ADDRESS_LIMIT.
	// Default 100.
	PerAddress int
	// PerMobile is how many registrations one mobile may start per LockoutWindow.
	// Default 3.
	PerMobile int
	// ServiceSecrets are the SHA-256 hashes of each service's accepted client
	// secrets (at most two, for rotation). Env TRIALHUB_PATIENT_SERVICE_SECRETS,
	// "epro=<s1>,<s2>;trial=<s1>".
	ServiceSecrets map[string][][32]byte
	// KeyRotation is how old the current signing key may get before the service
	// rotates it (checked at start and hourly). Env
	// TRIALHUB_PATIENT_SIGNING_KEY_ROTATION. Default 720h (30 days); at least 1h,
	// far above the access-token lifetime, so a retired key is never needed for
	// a live token.
	KeyRotation time.Duration
	// SMSURL is the SMS vendor's base URL (POST {SMSURL}/sms). Mount has no
	// accessor for a dependency's URL, so it is read here from the same variable
	// the kit reads for the sms-vendor dependency: TRIALHUB_SMS_VENDOR_URL.
	SMSURL string
}

// Defaults of Config.
const (
	DefaultAccessTTL = 5 * time.Minute
	MaxAccessTTL     = 15 * time.Minute
)

func (c Config) withDefaults() (Config, error) {
	if c.MasterKey.ID == "" {
		return c, errors.New("no master key: set TRIALHUB_PATIENT_MASTER_KEY (base64 of 32 bytes) or TRIALHUB_PATIENT_MASTER_KEY_FILE")
	}
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
	if c.Issuer == "" {
		c.Issuer = "trialhub"
	}
	def(&c.AccessTTL, DefaultAccessTTL)
	if c.AccessTTL > MaxAccessTTL {
		return c, fmt.Errorf("access-token lifetime %s is over the maximum of %s", c.AccessTTL, MaxAccessTTL)
	}
	def(&c.RefreshTTL, 30*24*time.Hour)
	def(&c.ActivationTTL, 72*time.Hour)
	def(&c.CodeTTL, 10*time.Minute)
	def(&c.KeyRotation, 30*24*time.Hour)
	if c.KeyRotation < time.Hour {
		return c, fmt.Errorf("signing key rotation %s is under the minimum of 1h", c.KeyRotation)
	}
	def(&c.LockoutWindow, 15*time.Minute)
	defInt(&c.SlowAfter, 3)
	defInt(&c.LockoutAfter, 10)
	defInt(&c.PerAddress, 100)
	defInt(&c.PerMobile, 3)
	return c, nil
}

// ConfigFromEnv reads Config from the environment (lookup is os.LookupEnv).
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	keyText := get("TRIALHUB_PATIENT_MASTER_KEY")
	if file := get("TRIALHUB_PATIENT_MASTER_KEY_FILE"); keyText == "" && file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("master key file: %w", err)
		}
		keyText = string(data)
	}
	if keyText != "" {
		k, err := vault.ParseMasterKey(keyText)
		if err != nil {
			return c, fmt.Errorf("TRIALHUB_PATIENT_MASTER_KEY: %w", err)
		}
		c.MasterKey = k
	}
	for _, s := range strings.Split(get("TRIALHUB_PATIENT_PREVIOUS_MASTER_KEYS"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			k, err := vault.ParseMasterKey(s)
			if err != nil {
				return c, fmt.Errorf("TRIALHUB_PATIENT_PREVIOUS_MASTER_KEYS: %w", err)
			}
			c.PreviousMasterKeys = append(c.PreviousMasterKeys, k)
		}
	}
	c.Issuer = get("TRIALHUB_ISSUER")
	c.SMSURL = get("TRIALHUB_SMS_VENDOR_URL")
	durations := map[string]*time.Duration{
		"TRIALHUB_PATIENT_ACCESS_TOKEN_TTL":     &c.AccessTTL,
		"TRIALHUB_PATIENT_REFRESH_TOKEN_TTL":    &c.RefreshTTL,
		"TRIALHUB_PATIENT_LOCKOUT_WINDOW":       &c.LockoutWindow,
		"TRIALHUB_PATIENT_SIGNING_KEY_ROTATION": &c.KeyRotation,
	}
	for name, dst := range durations {
		if v := get(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*dst = d
		}
	}
	ints := map[string]*int{"TRIALHUB_PATIENT_LOCKOUT_AFTER": &c.LockoutAfter, "TRIALHUB_PATIENT_PER_ADDRESS_LIMIT": &c.PerAddress}
	for name, dst := range ints {
		if v := get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*dst = n
		}
	}
	secrets, err := ParseServiceSecrets(get("TRIALHUB_PATIENT_SERVICE_SECRETS"))
	if err != nil {
		return c, err
	}
	c.ServiceSecrets = secrets
	return c, nil
}

// ParseServiceSecrets reads "epro=<s1>,<s2>;trial=<s1>" into hashes; at most two
// secrets per service (the current one and the one being rotated out).
func ParseServiceSecrets(text string) (map[string][][32]byte, error) {
	out := map[string][][32]byte{}
	for _, entry := range strings.Split(text, ";") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		name, list, ok := strings.Cut(entry, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("TRIALHUB_PATIENT_SERVICE_SECRETS: entry %q is not name=secret[,secret]", name)
		}
		for _, s := range strings.Split(list, ",") {
			if s = strings.TrimSpace(s); len(s) < 32 {
				return nil, fmt.Errorf("TRIALHUB_PATIENT_SERVICE_SECRETS: a secret of %s is shorter than 32 characters", name)
			}
			out[name] = append(out[name], sha256.Sum256([]byte(s)))
		}
		if len(out[name]) > 2 {
			return nil, fmt.Errorf("TRIALHUB_PATIENT_SERVICE_SECRETS: %s has more than two secrets", name)
		}
	}
	return out, nil
}
