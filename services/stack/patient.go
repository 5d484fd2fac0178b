package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/db"
)

// masterKeyFile is the patient service's master key in the data folder: the dev
// stack's stand-in for a mounted secret. Deleting it makes every PII field and
// signing key of data/patient.db unreadable.
const masterKeyFile = "patient-master.key"

// patientEnv is the environment the dev stack's patient service reads: the
// process's own, with the master key file of the data folder (created on first
// use) and the SMS vendor at the stack's fake vendor, unless the environment says
// otherwise.
func patientEnv(data, self, serviceSecrets string) (func(string) (string, bool), error) {
	path := filepath.Join(data, masterKeyFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write the patient master key: %w", err)
		}
	}
	defaults := map[string]string{
		"TRIALHUB_PATIENT_MASTER_KEY_FILE": path,
		"TRIALHUB_SMS_VENDOR_URL":          self + FakeVendorPath,
		"TRIALHUB_PATIENT_SERVICE_SECRETS": serviceSecrets,
	}
	return func(key string) (string, bool) {
		if v, ok := os.LookupEnv(key); ok {
			return v, true
		}
		v, ok := defaults[key]
		return v, ok
	}, nil
}

// serviceSecrets makes a client secret for each service but the patient service
// (the issuer signs its own tokens), for the client-credentials exchange, in the
// form TRIALHUB_PATIENT_SERVICE_SECRETS takes. They live as long as the process.
func serviceSecrets(services []platform.Service) (map[string]string, string, error) {
	secrets := map[string]string{}
	var spec []string
	for _, svc := range services {
		if svc.Name == patient.Name {
			continue
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, "", err
		}
		secrets[svc.Name] = base64.RawURLEncoding.EncodeToString(b)
		spec = append(spec, svc.Name+"="+secrets[svc.Name])
	}
	return secrets, strings.Join(spec, ";"), nil
}

// patientKeys opens the signing keys of the data folder's patient database, for
// tokens minted outside the running stack.
func patientKeys(ctx context.Context, data string) (*patient.Keys, func(), error) {
	path := filepath.Join(data, patient.Name+".db")
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no patient database in %s: start the stack once (make run) first", data)
	}
	lookup, err := patientEnv(data, "", "")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := patient.ConfigFromEnv(lookup)
	if err != nil {
		return nil, nil, err
	}
	d, err := db.Open(ctx, "sqlite:"+path)
	if err != nil {
		return nil, nil, err
	}
	keys := patient.NewKeys()
	if err := keys.Open(ctx, d, cfg); err != nil {
		d.Close()
		return nil, nil, err
	}
	return keys, func() { d.Close() }, nil
}
