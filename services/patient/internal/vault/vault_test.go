package vault

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealOpenBindsContext(t *testing.T) {
	c, err := NewCipher("k1", GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	sealed := c.Seal("+4915112345678", "patients/mobile/a")
	if bytes.Contains(sealed, []byte("4915112345678")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if got, err := c.Open(sealed, "patients/mobile/a"); err != nil || got != "+4915112345678" {
		t.Fatalf("open: %q, %v", got, err)
	}
	for _, ctx := range []string{"patients/mobile/b", "patients/full_name/a"} {
		if _, err := c.Open(sealed, ctx); err == nil {
			t.Errorf("a value moved to %s opened", ctx)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := c.Open(sealed, "patients/mobile/a"); err == nil {
		t.Error("a damaged value opened")
	}
	other, _ := NewCipher("k2", GenerateKey())
	if _, err := other.Open(c.Seal("x", "c"), "c"); err == nil {
		t.Error("another data key opened the value")
	}
}

func TestRewrap(t *testing.T) {
	a, _ := NewMasterKey(GenerateKey())
	b, _ := NewMasterKey(GenerateKey())
	dk := GenerateKey()
	wrapped, err := a.Wrap(dk, "data-key:1")
	if err != nil {
		t.Fatal(err)
	}
	re, err := Rewrap(wrapped, "data-key:1", a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Unwrap(re, "data-key:1"); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap after rewrap: %v", err)
	}
	if _, err := a.Unwrap(re, "data-key:1"); err == nil {
		t.Error("the old master key still unwraps")
	}
	if _, err := b.Unwrap(re, "data-key:2"); err == nil {
		t.Error("the key unwrapped under another label")
	}
	if a.ID == b.ID || len(a.ID) != 16 {
		t.Errorf("master key ids %q %q", a.ID, b.ID)
	}
}

func TestParseMasterKey(t *testing.T) {
	if _, err := ParseMasterKey("c2hvcnQ="); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := ParseMasterKey("not base64!"); err == nil {
		t.Error("junk was accepted")
	}
	if _, err := ParseMasterKey(" MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n"); err != nil {
		t.Errorf("a 32-byte key with blanks: %v", err)
	}
}

func TestNormalise(t *testing.T) {
	for in, want := range map[string]string{"+49 151 1234-5678": "+4915112345678", "+33 (6) 12.34.56.78": "+33612345678"} {
		if got, err := NormaliseMobile(in); err != nil || got != want {
			t.Errorf("NormaliseMobile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"015112345678", "+0151123456", "+49abc", "+12"} {
		if _, err := NormaliseMobile(bad); err == nil {
			t.Errorf("NormaliseMobile(%q) accepted", bad)
		}
	}
	if NormaliseNationalID("de", "t22 000-129") != NormaliseNationalID("DE", "T22000129") {
		t.Error("national IDs differing in case and separators index differently")
	}
	if NormaliseNationalID("DE", "1") == NormaliseNationalID("FR", "1") {
		t.Error("the country is not part of the national ID index")
	}
	x, _ := NewIndex(GenerateKey())
	y, _ := NewIndex(GenerateKey())
	if x.Of("mobile", "+4915112345678") == y.Of("mobile", "+4915112345678") || x.Of("mobile", "1") == x.Of("national_id", "1") {
		t.Error("the index is not keyed or not separated by kind")
	}
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := ActivationCode()
		if len(c) != 8 || strings.ContainsAny(c, "ILOU") {
			t.Fatalf("activation code %q", c)
		}
		seen[c] = true
		s := SMSCode()
		if len(s) != 6 || strings.Trim(s, "0123456789") != "" {
			t.Fatalf("sms code %q", s)
		}
	}
	if len(seen) < 999 {
		t.Errorf("%d distinct codes of 1000", len(seen))
	}
}
