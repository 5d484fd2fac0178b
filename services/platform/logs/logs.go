// Package logs makes "never personal data, tokens, passwords, codes or answers in
// the logs" structural rather than a matter of care, and lets an operator change
// the log level of a running process.
//
//   - Secret is a string type that cannot be logged or printed: its LogValue,
//     String, Format and MarshalJSON all give "[redacted]". Hold passwords,
//     activation codes, tokens, mobiles, national ids and answers in it (or in a
//     type of your own with the same LogValue) from the edge on.
//   - NewHandler wraps the process's slog.Handler and refuses what still gets
//     through: attributes whose key names a secret (password, token, code,
//     mobile, national_id, answer, ...), and values or messages holding what looks
//     like a JWT, an e-mail address, a phone number (E.164 or national) or a long
//     number (a national id), which it replaces with "[redacted]".
//   - LevelHandler shows (GET) and sets (PUT) the level of a running process.
//   - Routine names the calls that are not logged one line per call at info
//     (health probes, reflection).
//
// The patterns are a net, not the guarantee: a name in free text has no shape.
// The guarantee is that handlers log ids, codes and Secret values only.
package logs

import (
	"fmt"
	"log/slog"
)

// Redacted replaces every refused value.
const Redacted = "[redacted]"

// Secret is a string that must never reach a log, a trace or an error message:
// every way of rendering it gives Redacted. Reveal returns the value, for the one
// place that needs it (hashing a password, sending an SMS).
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// LogValue makes slog log Redacted.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// String returns Redacted.
func (Secret) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (Secret) GoString() string { return Redacted }

// Format writes Redacted for every verb (%s, %v, %q, %x, ...).
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON writes "[redacted]": a struct holding a Secret can be logged or
// dumped as JSON without it. To send the value, use Reveal.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText writes Redacted.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
