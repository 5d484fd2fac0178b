package patient

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/datakey"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/db"
)

// pii is the vault as the service uses it: the data keys (unwrapped at start,
// kept only in memory) and the blind index.
type pii struct {
	current *vault.Cipher
	ciphers map[string]*vault.Cipher
	index   *vault.Index
}

const (
	purposePII   = "pii"
	purposeIndex = "index"
)

// loadPII unwraps the data keys, creating the first data key and the index key on
// first start, and re-wraps keys still wrapped by a previous master key (master
// key rotation: configure the new key, keep the old one in
// TRIALHUB_PATIENT_PREVIOUS_MASTER_KEYS for one start, then remove it).
func loadPII(ctx context.Context, d *db.DB, cfg Config) (*pii, error) {
	p := &pii{ciphers: map[string]*vault.Cipher{}}
	err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		client := entTx(tx)
		rows, err := client.DataKey.Query().Order(ent.Asc(datakey.FieldCreatedAt), ent.Asc(datakey.FieldID)).All(ctx)
		if err != nil {
			return err
		}
		for _, purpose := range []string{purposePII, purposeIndex} {
			found := false
			for _, r := range rows {
				found = found || r.Purpose == purpose
			}
			if found {
				continue
			}
			id := uuid.NewString()
			wrapped, err := cfg.MasterKey.Wrap(vault.GenerateKey(), "data-key:"+id)
			if err != nil {
				return err
			}
			row, err := client.DataKey.Create().SetID(id).SetPurpose(purpose).SetWrapped(wrapped).
				SetMasterKid(cfg.MasterKey.ID).SetCreatedAt(time.Now().UTC()).Save(ctx)
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
		for _, r := range rows {
			label := "data-key:" + r.ID
			from, ok := findMaster(cfg, r.MasterKid)
			if !ok {
				return fmt.Errorf("data key %s is wrapped by master key %s, which is not configured", r.ID, r.MasterKid)
			}
			raw, err := from.Unwrap(r.Wrapped, label)
			if err != nil {
				return fmt.Errorf("data key %s: %w", r.ID, err)
			}
			if from.ID != cfg.MasterKey.ID {
				wrapped, err := cfg.MasterKey.Wrap(raw, label)
				if err != nil {
					return err
				}
				if err := client.DataKey.UpdateOneID(r.ID).SetWrapped(wrapped).SetMasterKid(cfg.MasterKey.ID).Exec(ctx); err != nil {
					return err
				}
			}
			switch r.Purpose {
			case purposeIndex:
				if p.index, err = vault.NewIndex(raw); err != nil {
					return err
				}
			case purposePII:
				c, err := vault.NewCipher(r.ID, raw)
				if err != nil {
					return err
				}
				p.ciphers[r.ID] = c
				p.current = c // the newest data key seals new values
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("PII vault: %w", err)
	}
	return p, nil
}

// seal encrypts a field of a row: context binds it to table, column and row.
func (p *pii) seal(table, column, id, value string) []byte {
	return p.current.Seal(value, table+"/"+column+"/"+id)
}

// open decrypts a field sealed by seal.
func (p *pii) open(table, column, id string, sealed []byte) (string, error) {
	kid, err := vault.KeyIDOf(sealed)
	if err != nil {
		return "", err
	}
	c, ok := p.ciphers[kid]
	if !ok {
		return "", fmt.Errorf("%s.%s: unknown data key", table, column)
	}
	return c.Open(sealed, table+"/"+column+"/"+id)
}

func (p *pii) mobileIndex(e164 string) string { return p.index.Of("mobile", e164) }

func (p *pii) nationalIDIndex(country, id string) string {
	return p.index.Of("national_id", vault.NormaliseNationalID(country, id))
}

// codeHash is the keyed hash a one-time code is stored as: codes are short, so an
// unkeyed hash could be reversed by trying them all.
func (p *pii) codeHash(purpose, code string) string { return p.index.Of("code:"+purpose, code) }
