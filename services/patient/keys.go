package patient

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/golang-jwt/jwt/v5"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/signingkey"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// Keys are the token signing keys, kept in the service's database (private
// halves encrypted under the master key) so that every replica signs and
// verifies with the same set and a rotation by one is seen by all. It is the
// auth.KeySource of the process's own verifier:
//
//	keys := patient.NewKeys()
//	svc := patient.Platform(patient.WithKeys(keys))
//	process.Verifier = auth.NewVerifier(keys, "trialhub")
//
// Until the service is mounted it knows no key, so every token is refused.
type Keys struct {
	mu       sync.RWMutex
	db       *db.DB
	master   vault.MasterKey
	issuer   string
	signer   *auth.Signer
	public   map[string]ed25519.PublicKey
	order    []string // kids, newest first
	loadedAt time.Time
}

// NewKeys returns an unbound key set; Platform(WithKeys(k)) binds it to the
// service's database when it mounts.
func NewKeys() *Keys { return &Keys{public: map[string]ed25519.PublicKey{}} }

// publishedKeys is how many of the newest keys are published and accepted: the
// current one and two before it, as auth.Signer keeps them. Rotate at intervals
// longer than the access-token lifetime (at most 15 minutes).
const publishedKeys = 3

// reloadEvery bounds how often a look-up of an unknown kid reloads from the
// database (another replica may have rotated).
const reloadEvery = 5 * time.Second

// bind loads the keys from d, creating the first one if there is none, and
// re-wraps keys wrapped by a previous master key.
func (k *Keys) bind(ctx context.Context, d *db.DB, cfg Config) error {
	k.mu.Lock()
	k.db, k.master, k.issuer = d, cfg.MasterKey, cfg.Issuer
	k.mu.Unlock()
	client := ent.NewClient(ent.Driver(d.Driver()))
	rows, err := client.SigningKey.Query().All(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	for _, row := range rows {
		if row.MasterKid == cfg.MasterKey.ID {
			continue
		}
		from, ok := findMaster(cfg, row.MasterKid)
		if !ok {
			return fmt.Errorf("signing key %s is wrapped by master key %s, which is not configured", row.ID, row.MasterKid)
		}
		wrapped, err := vault.Rewrap(row.PrivateEnc, "signing-key:"+row.ID, from, cfg.MasterKey)
		if err != nil {
			return fmt.Errorf("re-wrap signing key %s: %w", row.ID, err)
		}
		if err := client.SigningKey.UpdateOneID(row.ID).SetPrivateEnc(wrapped).SetMasterKid(cfg.MasterKey.ID).Exec(ctx); err != nil {
			return fmt.Errorf("re-wrap signing key %s: %w", row.ID, err)
		}
	}
	if len(rows) == 0 {
		if _, err := k.create(ctx, client, nil); err != nil {
			return err
		}
	}
	return k.load(ctx)
}

func findMaster(cfg Config, id string) (vault.MasterKey, bool) {
	for _, m := range append([]vault.MasterKey{cfg.MasterKey}, cfg.PreviousMasterKeys...) {
		if m.ID == id {
			return m, true
		}
	}
	return vault.MasterKey{}, false
}

// create stores a new signing key.
func (k *Keys) create(ctx context.Context, client *ent.Client, now func() time.Time) (auth.Key, error) {
	key, err := auth.NewKey()
	if err != nil {
		return auth.Key{}, err
	}
	wrapped, err := k.master.Wrap(key.Private.Seed(), "signing-key:"+key.ID)
	if err != nil {
		return auth.Key{}, err
	}
	at := time.Now().UTC()
	if now != nil {
		at = now()
	}
	err = client.SigningKey.Create().SetID(key.ID).SetPrivateEnc(wrapped).
		SetPublicKey(key.Private.Public().(ed25519.PublicKey)).SetMasterKid(k.master.ID).SetCreatedAt(at).Exec(ctx)
	if err != nil {
		return auth.Key{}, fmt.Errorf("store signing key: %w", err)
	}
	return key, nil
}

// load reads the newest keys and makes the newest one the signing key.
func (k *Keys) load(ctx context.Context) error {
	k.mu.RLock()
	d, master, issuer := k.db, k.master, k.issuer
	k.mu.RUnlock()
	if d == nil {
		return errors.New("signing keys: the patient service is not mounted")
	}
	rows, err := ent.NewClient(ent.Driver(d.Driver())).SigningKey.Query().
		Order(ent.Desc(signingkey.FieldCreatedAt), ent.Desc(signingkey.FieldID)).Limit(publishedKeys).All(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if len(rows) == 0 {
		return errors.New("signing keys: none stored")
	}
	seed, err := master.Unwrap(rows[0].PrivateEnc, "signing-key:"+rows[0].ID)
	if err != nil {
		return fmt.Errorf("signing key %s: %w", rows[0].ID, err)
	}
	current := auth.Key{ID: rows[0].ID, Private: ed25519.NewKeyFromSeed(seed)}
	public := map[string]ed25519.PublicKey{}
	var order []string
	var previous []auth.PublicKey
	for i, r := range rows {
		public[r.ID] = ed25519.PublicKey(r.PublicKey)
		order = append(order, r.ID)
		if i > 0 {
			previous = append(previous, auth.PublicKey{ID: r.ID, Key: ed25519.PublicKey(r.PublicKey)})
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signer == nil {
		k.signer = auth.NewSigner(current, issuer, previous...)
	} else if k.signer.PublicKey().ID != current.ID {
		k.signer.Rotate(current)
	}
	k.public, k.order, k.loadedAt = public, order, time.Now()
	return nil
}

// PublicKey implements auth.KeySource: a key this service published. An unknown
// kid reloads the set from the database (at most every 5 s), since another
// replica may have rotated.
func (k *Keys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k.mu.RLock()
	key, ok := k.public[kid]
	stale := time.Since(k.loadedAt) > reloadEvery
	bound := k.db != nil
	k.mu.RUnlock()
	if ok {
		return key, nil
	}
	if bound && stale {
		if err := k.load(ctx); err != nil {
			return nil, err
		}
		k.mu.RLock()
		key, ok = k.public[kid]
		k.mu.RUnlock()
		if ok {
			return key, nil
		}
	}
	return nil, fmt.Errorf("unknown signing key %q", kid)
}

// Sign issues an access token for caller, valid for ttl, with the current key.
// It returns the token, its expiry and its jti.
func (k *Keys) Sign(caller auth.Caller, ttl time.Duration) (string, time.Time, string, error) {
	k.mu.RLock()
	s := k.signer
	k.mu.RUnlock()
	if s == nil {
		return "", time.Time{}, "", errors.New("signing keys: the patient service is not mounted")
	}
	token, exp, err := s.Sign(caller, ttl)
	if err != nil {
		return "", time.Time{}, "", err
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		return "", time.Time{}, "", err
	}
	return token, exp, claims.ID, nil
}

// Mint signs a token for caller valid for an hour: the dev stack's Seeder.Mint.
func (k *Keys) Mint(caller auth.Caller) (string, error) {
	token, _, _, err := k.Sign(caller, time.Hour)
	return token, err
}

// TokenSource is the SERVICE token source of a service in this process (the dev
// stack's Process.Tokens): tokens signed with these keys, reused until a quarter
// of their 15-minute lifetime is left.
func (k *Keys) TokenSource(service string) auth.TokenSource {
	return tokenSourceFunc(func(ctx context.Context) (string, error) {
		k.mu.RLock()
		s := k.signer
		k.mu.RUnlock()
		if s == nil {
			return "", errors.New("signing keys: the patient service is not mounted")
		}
		return auth.NewSignerTokens(s, auth.Caller{Subject: service, Role: serviceRole}, MaxAccessTTL).Token(ctx)
	})
}

type tokenSourceFunc func(ctx context.Context) (string, error)

func (f tokenSourceFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// JWKS is the published key set, newest first.
func (k *Keys) JWKS() auth.JWKS {
	k.mu.RLock()
	defer k.mu.RUnlock()
	set := auth.JWKS{Keys: []auth.JWK{}}
	for _, kid := range k.order {
		jwk := auth.PublicKey{ID: kid, Key: k.public[kid]}.ToJWK()
		set.Keys = append(set.Keys, jwk)
	}
	return set
}

// Rotate makes a new signing key current and audits it as SIGNING_KEY_ROTATED
// (actor: this service). The two keys before it stay published.
func (k *Keys) Rotate(ctx context.Context, log *audit.Log) (string, error) {
	k.mu.RLock()
	d := k.db
	k.mu.RUnlock()
	if d == nil {
		return "", errors.New("signing keys: the patient service is not mounted")
	}
	var kid string
	err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		key, err := k.create(ctx, entTx(tx), nil)
		if err != nil {
			return err
		}
		kid = key.ID
		_, err = log.Append(ctx, tx, audit.Event{Actor: serviceActor, Action: "SIGNING_KEY_ROTATED", RecordType: "SIGNING_KEY", RecordID: key.ID})
		return err
	})
	if err != nil {
		return "", err
	}
	return kid, k.load(ctx)
}

// rotateWhenDue rotates the signing key when the newest one is older than
// every, and reloads the set (picking up another replica's rotation); it runs at
// start and then hourly until ctx ends. Two replicas rotating at once make two
// keys, both published: harmless.
func (k *Keys) rotateWhenDue(ctx context.Context, every time.Duration, log *audit.Log, logger *slog.Logger) {
	check := func() {
		k.mu.RLock()
		d := k.db
		k.mu.RUnlock()
		newest, err := ent.NewClient(ent.Driver(d.Driver())).SigningKey.Query().Order(ent.Desc(signingkey.FieldCreatedAt)).First(ctx)
		if err == nil && time.Since(newest.CreatedAt) > every {
			var kid string
			if kid, err = k.Rotate(ctx, log); err == nil {
				logger.InfoContext(ctx, "signing key rotated", "kid", kid)
			}
		} else if err == nil {
			err = k.load(ctx)
		}
		if err != nil && ctx.Err() == nil {
			logger.ErrorContext(ctx, "signing key rotation", "error", err.Error())
		}
	}
	check()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// serveJWKS is GET /.well-known/jwks.json.
func (k *Keys) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_ = json.NewEncoder(w).Encode(k.JWKS())
}

// GetSigningKeys publishes the key set and the issuer.
func (s *Service) GetSigningKeys(context.Context, *patientv1.GetSigningKeysRequest) (*patientv1.GetSigningKeysResponse, error) {
	res := &patientv1.GetSigningKeysResponse{Issuer: s.cfg.Issuer}
	for _, j := range s.keys.JWKS().Keys {
		res.Keys = append(res.Keys, &patientv1.SigningKey{Kid: j.Kid, Kty: j.Kty, Crv: j.Crv, X: j.X, Alg: "EdDSA", Use: "sig"})
	}
	if len(res.Keys) == 0 {
		return nil, connect.NewError(connect.CodeUnavailable, "no signing key loaded")
	}
	return res, nil
}

// Open loads the keys from the patient service's database d, already migrated,
// without mounting the service, so a tool (`trialhub token`) signs tokens that the
// running service accepts.
func (k *Keys) Open(ctx context.Context, d *db.DB, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	return k.bind(ctx, d, cfg)
}
