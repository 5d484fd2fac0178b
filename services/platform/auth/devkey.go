package auth

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevKeyFile is the name of the development signing key inside a data folder.
const DevKeyFile = "dev-signing-key.pem"

// LoadOrCreateDevKey returns the development signing key kept in dir, generating
// it (mode 0600) on first use. It is for `trialhub dev` and tests only: production
// keys come from the deployment's secret store.
func LoadOrCreateDevKey(dir string) (Key, error) {
	path := filepath.Join(dir, DevKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := NewKey()
		if err != nil {
			return Key{}, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key.Private)
		if err != nil {
			return Key{}, fmt.Errorf("encode dev key: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return Key{}, fmt.Errorf("create data folder: %w", err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		// O_EXCL: two processes starting at once must not overwrite each other's key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateDevKey(dir)
		}
		if err != nil {
			return Key{}, fmt.Errorf("write dev key: %w", err)
		}
		if _, err := f.Write(pemBytes); err != nil {
			f.Close()
			return Key{}, fmt.Errorf("write dev key: %w", err)
		}
		return key, f.Close()
	}
	if err != nil {
		return Key{}, fmt.Errorf("read dev key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, fmt.Errorf("read dev key %s: not PEM", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("read dev key %s: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("read dev key %s: not an Ed25519 key", path)
	}
	return Key{ID: Thumbprint(priv.Public().(ed25519.PublicKey)), Private: priv}, nil
}
