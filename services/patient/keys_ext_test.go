package patient_test

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/golang-jwt/jwt/v5"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// Without a master key the service refuses to start, saying what to set.
func TestRefusesToStartWithoutMasterKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "patient.db")
	p := platform.Process{
		Name:     "patient",
		Services: []platform.Service{patient.Platform(patient.WithEnv(func(string) (string, bool) { return "", false }))},
		DSN:      func(string) string { return dsn },
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			dep.BaseURL = "http://127.0.0.1:1"
			return dep, nil
		},
		Log: slog.New(slog.DiscardHandler),
	}
	err = p.Serve(ctx, ln)
	if err == nil || !strings.Contains(err.Error(), "TRIALHUB_PATIENT_MASTER_KEY") {
		t.Fatalf("start without a master key: %v", err)
	}
}

// A new master key with the old one as previous re-wraps every data and signing
// key at start; identities stay readable, tokens keep verifying, and afterwards
// the old key is no longer needed.
func TestMasterKeyRotation(t *testing.T) {
	old := testConfig(t)
	a := startWith(t, old)
	inv := a.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	sess := a.activate(t, "+33612345678", inv.GetActivationCode(), pw)

	next := testConfig(t)
	next.PreviousMasterKeys = []vault.MasterKey{old.MasterKey}
	b := startWith(t, next, platformtest.WithDSN(a.DSN))
	d := b.DB(t)
	var wrongKey int
	if err := d.ReadSQL().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM data_keys WHERE master_kid <> $1) + (SELECT COUNT(*) FROM signing_keys WHERE master_kid <> $1)`,
		next.MasterKey.ID).Scan(&wrongKey); err != nil {
		t.Fatal(err)
	}
	if wrongKey != 0 {
		t.Fatalf("%d keys still wrapped by the old master key", wrongKey)
	}
	only := testConfig(t)
	only.MasterKey = next.MasterKey
	c := startWith(t, only, platformtest.WithDSN(a.DSN))
	res, err := patientv1connect.NewPatientServiceClient(c.Client(t, platformtest.Admin())).GetPatientIdentity(ctx,
		&patientv1.GetPatientIdentityRequest{SubjectUuid: inv.GetSubjectUuid(), Reason: "after master key rotation"})
	if err != nil || res.GetMobile() != "+33612345678" {
		t.Fatalf("identity after rotation: %v, %v", res, err)
	}
	if _, err := patientv1connect.NewPatientServiceClient(bearer(t, c.URL, sess.GetTokens().GetAccessToken())).GetProfile(ctx, &patientv1.GetProfileRequest{}); err != nil {
		t.Fatalf("a token signed before the rotation: %v", err)
	}
	_, err = c.login("+33612345678", pw)
	if err != nil {
		t.Fatalf("login after rotation (blind index unchanged): %v", err)
	}
}

// The whole onboarding runs on SQLite too, as in the dev stack.
func TestOnSQLite(t *testing.T) {
	e := start(t, platformtest.WithSQLite())
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	e.activate(t, "+33612345678", inv.GetActivationCode(), pw)
	l, err := e.login("+33612345678", pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: l.GetTokens().GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	fresh := e.register(t, "+447700900002", "QQ654321A")
	eventually(t, "the SMS", func() bool { return len(e.sms.to("+447700900002")) == 1 })
	code := smsCode.FindStringSubmatch(e.sms.to("+447700900002")[0].Text)[1]
	if _, err := e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: fresh.GetRegistrationId(), Code: code, IdempotencyKey: "confirm-sqlite-000001"}); err != nil {
		t.Fatal(err)
	}
	e.staff(t, "a.admin", 4, nil, nil)
	for range e.cfg.LockoutAfter {
		e.staffLogin("a.admin", "not the password")
	}
	_, err = e.staffLogin("a.admin", pw)
	wantCode(t, "locked on SQLite", err, connect.CodeResourceExhausted)
	rep, err := patientv1connect.NewAuditServiceClient(e.Client(t, platformtest.Admin())).VerifyAuditTrail(ctx, &patientv1.VerifyAuditTrailRequest{})
	if err != nil || !rep.GetIntact() {
		t.Fatalf("verify: %v, %v", rep, err)
	}
}

// A rotation makes a new key current, keeps the old one published (its tokens
// still verify) and is audited.
func TestSigningKeyRotation(t *testing.T) {
	e := start(t)
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	before := e.activate(t, "+33612345678", inv.GetActivationCode(), pw)
	kid, err := e.keys.Rotate(ctx, audit.New())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.auth.GetSigningKeys(ctx, &patientv1.GetSigningKeysRequest{})
	if err != nil || len(keys.GetKeys()) != 2 || keys.GetKeys()[0].GetKid() != kid {
		t.Fatalf("keys after rotation: %v, %v", keys, err)
	}
	after, err := e.login("+33612345678", pw)
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(after.GetTokens().GetAccessToken(), &claims)
	if err != nil || tok.Header["kid"] != kid {
		t.Fatalf("new token's kid %v, want %s (%v)", tok.Header["kid"], kid, err)
	}
	for _, token := range []string{before.GetTokens().GetAccessToken(), after.GetTokens().GetAccessToken()} {
		if _, err := patientv1connect.NewPatientServiceClient(bearer(t, e.URL, token)).GetProfile(ctx, &patientv1.GetProfileRequest{}); err != nil {
			t.Fatalf("token across rotation: %v", err)
		}
	}
	if n := e.actions(t, e.DB(t), "SIGNING_KEY_ROTATED"); n != 1 {
		t.Fatalf("SIGNING_KEY_ROTATED events: %d, want 1", n)
	}
}
