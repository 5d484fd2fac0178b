// Package password hashes and checks passwords with argon2id
// (golang.org/x/crypto/argon2) and applies the minimum strength rules. Plain Go,
// no database.
//
// Parameters (OWASP Password Storage Cheat Sheet, argon2id option 2): memory
// 19 MiB (19456 KiB), 2 iterations, 1 lane, a 16-byte random salt per password
// and a 32-byte key, stored in the PHC string form
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, so that stronger parameters can be
// introduced later and old hashes still verify.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// The stated argon2id parameters.
const (
	Memory  = 19 * 1024 // KiB
	Time    = 2
	Threads = 1
	KeyLen  = 32
	SaltLen = 16
	// MinLength is the shortest password accepted (NIST SP 800-63B: 8, we ask 10).
	MinLength = 10
)

// Hash returns the PHC-form argon2id hash of pw with a new random salt.
func Hash(pw string) string {
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	key := argon2.IDKey([]byte(pw), salt, Time, Memory, Threads, KeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, Memory, Time, Threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// dummy is checked against for unknown accounts, so that a login for an unknown
// account costs what a wrong password costs.
var dummy = Hash("not a password anyone has")

// Check reports whether pw matches hash. An empty hash (no password set, or an
// unknown account) is checked against a dummy hash, so the time spent does not
// tell the two apart, and fails.
func Check(hash, pw string) bool {
	if hash == "" {
		check(dummy, pw)
		return false
	}
	return check(hash, pw)
}

func check(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// ErrWeak is the error of a password that fails the strength rules; its text
// names the rule, never the password.
var ErrWeak = errors.New("password is too weak")

// common are passwords well known from breach corpora (the most frequent ones
// of at least MinLength characters); a password equal to one of them, ignoring
// case, is refused.
var common = map[string]bool{
	"1234567890": true, "12345678910": true, "123456789a": true, "qwertyuiop": true,
	"password12": true, "password123": true, "password1!": true, "iloveyou12": true,
	"0987654321": true, "1q2w3e4r5t": true, "qwerty1234": true, "1qaz2wsx3edc": true,
	"abcdefghij": true, "aaaaaaaaaa": true, "letmein123": true, "welcome123": true,
	"trustno1234": true, "passw0rd123": true, "qwerty123456": true, "1234qwer": true,
	"administrator": true, "changeme123": true, "football123": true, "sunshine123": true,
}

// Validate applies the strength rules: at least MinLength characters, not only
// one repeated character, not a well-known breached password, and not containing
// the account's identifier (username or mobile digits) when given.
func Validate(pw string, identifiers ...string) error {
	if utf8.RuneCountInString(pw) < MinLength {
		return fmt.Errorf("%w: at least %d characters", ErrWeak, MinLength)
	}
	lower := strings.ToLower(pw)
	if common[lower] {
		return fmt.Errorf("%w: it is well known from breaches", ErrWeak)
	}
	distinct := map[rune]bool{}
	for _, r := range lower {
		distinct[r] = true
	}
	if len(distinct) < 4 {
		return fmt.Errorf("%w: it needs at least 4 different characters", ErrWeak)
	}
	for _, id := range identifiers {
		id = strings.TrimPrefix(strings.ToLower(id), "+")
		if len(id) >= 4 && strings.Contains(lower, id) {
			return fmt.Errorf("%w: it contains the account's identifier", ErrWeak)
		}
	}
	return nil
}
