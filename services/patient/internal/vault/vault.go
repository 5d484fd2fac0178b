// Package vault is the patient service's envelope encryption: personal data is
// sealed per field with AES-256-GCM under a data key, data keys are wrapped
// (AES-256-GCM) by the master key from configuration, and look-ups use a keyed
// HMAC-SHA256 blind index over the normalised value, never the plaintext. It is
// plain Go: no database, no HTTP.
//
// Rotating the master key re-wraps the data keys (Rewrap); sealed fields and
// blind indexes stay as they are, so rotation needs no downtime and no
// re-encryption of rows.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// KeySize is the size of master and data keys: 32 bytes, AES-256.
const KeySize = 32

// MasterKey wraps data keys. Its ID (a short fingerprint) is stored beside each
// wrapped key, so a rotation knows which key wrapped what.
type MasterKey struct {
	ID  string
	key []byte
}

// ParseMasterKey reads a base64 (standard or URL alphabet, padding optional)
// 32-byte key, surrounding blanks ignored.
func ParseMasterKey(text string) (MasterKey, error) {
	text = strings.TrimSpace(text)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(text); err == nil {
			break
		}
	}
	if err != nil {
		return MasterKey{}, errors.New("master key is not base64")
	}
	return NewMasterKey(raw)
}

// NewMasterKey returns a master key from 32 raw bytes.
func NewMasterKey(raw []byte) (MasterKey, error) {
	if len(raw) != KeySize {
		return MasterKey{}, fmt.Errorf("master key has %d bytes, want %d", len(raw), KeySize)
	}
	sum := sha256.Sum256(append([]byte("trialhub.patient.master-key-id\x00"), raw...))
	return MasterKey{ID: hex.EncodeToString(sum[:8]), key: append([]byte(nil), raw...)}, nil
}

// GenerateKey returns 32 random bytes.
func GenerateKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}

// Wrap encrypts a data key under the master key; label binds it to its purpose.
func (m MasterKey) Wrap(dataKey []byte, label string) ([]byte, error) {
	return seal(m.key, dataKey, []byte("wrap:"+label))
}

// Unwrap decrypts a data key wrapped under this master key with the same label.
func (m MasterKey) Unwrap(wrapped []byte, label string) ([]byte, error) {
	k, err := open(m.key, wrapped, []byte("wrap:"+label))
	if err != nil {
		return nil, errors.New("unwrap data key: wrong master key or damaged key")
	}
	return k, nil
}

// Rewrap moves a wrapped key from the old master key to the new one.
func Rewrap(wrapped []byte, label string, from, to MasterKey) ([]byte, error) {
	k, err := from.Unwrap(wrapped, label)
	if err != nil {
		return nil, err
	}
	return to.Wrap(k, label)
}

// Cipher seals and opens personal data with one data key.
type Cipher struct {
	id   string
	aead cipher.AEAD
}

// NewCipher returns a field cipher for the data key named id.
func NewCipher(id string, dataKey []byte) (*Cipher, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, err
	}
	return &Cipher{id: id, aead: aead}, nil
}

// ID names the data key; sealed values carry it so that a later data key can
// be introduced without re-encrypting old rows.
func (c *Cipher) ID() string { return c.id }

// Seal encrypts a field value. context (table, column, row id) is
// authenticated, so a ciphertext copied to another row or column fails to open.
// The result is "<key id>." + nonce + ciphertext.
func (c *Cipher) Seal(plaintext, context string) []byte {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := append([]byte(c.id+"."), nonce...)
	return c.aead.Seal(out, nonce, []byte(plaintext), []byte(context))
}

// KeyIDOf returns the data key id a sealed value names.
func KeyIDOf(sealed []byte) (string, error) {
	i := strings.IndexByte(string(sealed), '.')
	if i <= 0 {
		return "", errors.New("sealed value has no key id")
	}
	return string(sealed[:i]), nil
}

// Open decrypts a value sealed by Seal with the same context.
func (c *Cipher) Open(sealed []byte, context string) (string, error) {
	id, err := KeyIDOf(sealed)
	if err != nil || id != c.id {
		return "", errors.New("sealed value is for another data key")
	}
	body := sealed[len(id)+1:]
	ns := c.aead.NonceSize()
	if len(body) < ns {
		return "", errors.New("sealed value is truncated")
	}
	pt, err := c.aead.Open(nil, body[:ns], body[ns:], []byte(context))
	if err != nil {
		return "", errors.New("sealed value does not open: damaged or moved")
	}
	return string(pt), nil
}

// Index computes blind indexes: HMAC-SHA256 under the index key, per kind, over
// a normalised value.
type Index struct{ key []byte }

// NewIndex returns a blind index with key.
func NewIndex(key []byte) (*Index, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("index key has %d bytes, want %d", len(key), KeySize)
	}
	return &Index{key: append([]byte(nil), key...)}, nil
}

// Of returns the hex blind index of an already normalised value of a kind
// ("mobile", "national_id", or a code's purpose).
func (x *Index) Of(kind, normalised string) string {
	h := hmac.New(sha256.New, x.key)
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(normalised))
	return hex.EncodeToString(h.Sum(nil))
}

// NormaliseMobile returns the E.164 form of a mobile number: "+" and digits,
// with spaces, dashes, dots and brackets removed. A number without "+" is
// refused: without a country code it is ambiguous.
func NormaliseMobile(s string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", errors.New("mobile: not an E.164 number")
		}
	}
	out := b.String()
	if len(out) < 8 || len(out) > 16 || out[0] != '+' || out[1] == '0' {
		return "", errors.New("mobile: not an E.164 number")
	}
	return out, nil
}

// NormaliseNationalID returns the national ID for indexing: the issuing country
// and the number upper-cased without blanks and the usual separators, so
// "ab 123-456" and "AB123456" from one country match.
func NormaliseNationalID(country, id string) string {
	var b strings.Builder
	for _, r := range id {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return strings.ToUpper(country) + ":" + b.String()
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key has %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

func open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("truncated")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
}

// crockford is Crockford's base32 alphabet: digits and upper-case letters
// without I, L, O and U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ActivationCode returns a new one-time activation code: eight characters of
// Crockford base32 (40 random bits).
func ActivationCode() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = crockford[int(b[i])%32]
	}
	return string(b)
}

// SMSCode returns a new six-digit verification code.
func SMSCode() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = '0' + b[i]%10 // 256 % 10 bias is 0.4%; acceptable for a rate-limited 5-try code
	}
	return string(b)
}
