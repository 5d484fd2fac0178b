package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashCheck(t *testing.T) {
	h := Hash("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not state the parameters", h)
	}
	if !Check(h, "correct horse battery") || Check(h, "correct horse batterY") {
		t.Fatal("check is wrong")
	}
	if Hash("correct horse battery") == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if Check("", "") || Check("$bcrypt$x", "x") {
		t.Fatal("an empty or foreign hash matched")
	}
}

func TestValidate(t *testing.T) {
	for pw, ok := range map[string]bool{
		"short":                 false,
		"aaaaaaaaaaaa":          false,
		"Password123":           false,
		"1234567890":            false,
		"correct horse battery": true,
		"my 4915112345678 pass": false, // contains the mobile
	} {
		err := Validate(pw, "+4915112345678")
		if (err == nil) != ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", pw, err, ok)
		}
		if err != nil && (!errors.Is(err, ErrWeak) || strings.Contains(err.Error(), pw)) {
			t.Errorf("Validate(%q) error %q: not ErrWeak or names the password", pw, err)
		}
	}
}

// BenchmarkHash is the cost of one argon2id hash with the stated parameters:
// what each sign-in, activation and registration spends, and an attacker per
// guess.
func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		Hash("correct horse battery")
	}
}
