package patient_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	site1  = "5e1f0000-0000-4000-8000-0000000000a1"
	site2  = "5e1f0000-0000-4000-8000-0000000000a2"
	trial1 = "7a1a0000-0000-4000-8000-0000000000b1"
)

// either accepts the patient service's own tokens (issuer "trialhub", keys from
// its database) and the test environment's (platformtest's signer), so tests
// can act as staff without accounts and as the accounts the service signs in.
type either []platform.TokenVerifier

func (e either) Verify(ctx context.Context, token string) (auth.Caller, error) {
	var err error
	for _, v := range e {
		var c auth.Caller
		if c, err = v.Verify(ctx, token); err == nil {
			return c, nil
		}
	}
	return auth.Caller{}, err
}

// trialStandIn is the trial service's ListEnrollments over a fixed list: the
// trial service is not built yet, so the tests answer for it with the generated
// handler on a real HTTP server.
type trialStandIn struct {
	trialv1connect.UnimplementedTrialServiceHandler
	mu          sync.Mutex
	enrollments []*trialv1.Enrollment
}

func (t *trialStandIn) ListEnrollments(_ context.Context, req *trialv1.ListEnrollmentsRequest) (*trialv1.ListEnrollmentsResponse, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := &trialv1.ListEnrollmentsResponse{}
	for _, e := range t.enrollments {
		if e.GetSubjectUuid() == req.GetSubjectUuid() {
			res.Enrollments = append(res.Enrollments, e)
		}
	}
	return res, nil
}

type env struct {
	*platformtest.Env
	cfg    patient.Config
	trial  *trialStandIn
	sms    *smsInbox
	keys   *patient.Keys
	auth   patientv1connect.AuthServiceClient // anonymous
	public *connect.Client
}

func testConfig(t testing.TB) patient.Config {
	key, err := vault.NewMasterKey(vault.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return patient.Config{MasterKey: key, LockoutAfter: 4, SlowAfter: 2, PerAddress: 1000, PerMobile: 3}
}

func start(t testing.TB, opts ...platformtest.Option) *env {
	t.Helper()
	return startWith(t, testConfig(t), opts...)
}

func startWith(t testing.TB, cfg patient.Config, opts ...platformtest.Option) *env {
	t.Helper()
	trial := &trialStandIn{}
	mux := http.NewServeMux()
	srv := connect.NewServer()
	trialv1connect.RegisterTrialServiceHandler(srv, trial)
	connecthttp.Mount(mux, srv)
	trialURL := httptest.NewUnstartedServer(mux)
	trialURL.Config.Protocols = new(http.Protocols)
	trialURL.Config.Protocols.SetHTTP1(true)
	trialURL.Config.Protocols.SetUnencryptedHTTP2(true)
	trialURL.Start()
	t.Cleanup(trialURL.Close)
	sms := newSMSInbox(t)
	cfg.SMSURL = sms.URL
	keys := patient.NewKeys()
	signer := platformtest.NewSigner(t)
	verifier := either{auth.NewVerifier(keys, "trialhub"), auth.NewVerifier(signer.Keys(), platformtest.Issuer)}
	all := append([]platformtest.Option{
		platformtest.WithSigner(signer),
		platformtest.WithLogger(testLogger(t)),
		platformtest.WithServerOptions(platform.WithVerifier(verifier)),
		platformtest.WithDependency(patient.TrialDependency, trialURL.URL),
		platformtest.WithDependency(patient.SMSDependency, sms.URL),
	}, opts...)
	e := platformtest.Start(t, patient.Platform(patient.WithConfig(cfg), patient.WithKeys(keys)), all...)
	public := bearer(t, e.URL, "")
	return &env{Env: e, cfg: cfg, trial: trial, sms: sms, keys: keys, auth: patientv1connect.NewAuthServiceClient(public), public: public}
}

// bearer is a Connect client calling as the holder of token ("" for anonymous).
func bearer(t testing.TB, url, token string) *connect.Client {
	t.Helper()
	dep := clientDep(url)
	if token == "" {
		return newClient(dep, nil)
	}
	return newClient(dep, auth.StaticToken(token))
}

var ctx = context.Background()

// invite invites a participant as an investigator of site1/trial1.
func (e *env) invite(t testing.TB, name, nid, mobile string) *patientv1.InviteParticipantResponse {
	t.Helper()
	inv := patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site1)))
	res, err := inv.InviteParticipant(ctx, &patientv1.InviteParticipantRequest{FullName: name, NationalId: nid, NationalIdCountry: "DE",
		Mobile: mobile, SiteId: site1, TrialId: trial1, IdempotencyKey: "invite-" + uuid.NewString()})
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	return res
}

func investigator(sites ...string) auth.Caller {
	c := platformtest.Investigator(sites...)
	c.Trials = []string{trial1}
	return c
}

func (e *env) activate(t testing.TB, mobile, code, pw string) *patientv1.Session {
	t.Helper()
	res, err := e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Mobile{Mobile: mobile},
		ActivationCode: code, Password: pw, IdempotencyKey: "activate-" + uuid.NewString()})
	if err != nil {
		t.Fatalf("activate: %v", err)
	}
	return res.GetSession()
}

func (e *env) login(mobile, pw string) (*patientv1.LoginResponse, error) {
	return e.auth.Login(ctx, &patientv1.LoginRequest{Identifier: &patientv1.LoginRequest_Mobile{Mobile: mobile}, Password: pw})
}

func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func (e *env) actions(t *testing.T, d *db.DB, action string) int {
	t.Helper()
	var n int
	if err := d.ReadSQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_events WHERE action = $1`, action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const pw = "correct horse battery"

// An investigator invites, the participant activates with the code and signs
// in; the code works once; refresh rotates, and a reused refresh token revokes
// the whole session.
func TestInviteActivateLoginRefresh(t *testing.T) {
	e := start(t)
	d := e.DB(t)
	inv := e.invite(t, "Erika Mustermann", "T22000129", "+4915112345678")
	if len(inv.GetActivationCode()) != 8 || inv.GetSubjectUuid() == "" {
		t.Fatalf("invitation: %v", inv)
	}
	// Before activation sign-in is refused like a wrong password.
	_, err := e.login("+4915112345678", pw)
	wantCode(t, "login before activation", err, connect.CodeUnauthenticated)

	// A wrong code is refused and audited; a weak password does not use up the code.
	_, err = e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Mobile{Mobile: "+4915112345678"},
		ActivationCode: "00000000", Password: pw, IdempotencyKey: "activate-wrong-code-1"})
	wantCode(t, "wrong code", err, connect.CodeUnauthenticated)
	if n := e.actions(t, d, "CODE_REJECTED"); n != 1 {
		t.Fatalf("CODE_REJECTED events: %d, want 1", n)
	}
	_, err = e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Mobile{Mobile: "+4915112345678"},
		ActivationCode: inv.GetActivationCode(), Password: "aaaaaaaaaa", IdempotencyKey: "activate-weak-password"})
	wantCode(t, "weak password", err, connect.CodeInvalidArgument)

	sess := e.activate(t, "+4915112345678", inv.GetActivationCode(), pw)
	if sess.GetSubjectUuid() != inv.GetSubjectUuid() || sess.GetRole() != authzv1.Role_ROLE_PATIENT || sess.GetTokens().GetAccessToken() == "" {
		t.Fatalf("activation session: %v", sess)
	}
	// The code works once.
	_, err = e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_SubjectUuid{SubjectUuid: inv.GetSubjectUuid()},
		ActivationCode: inv.GetActivationCode(), Password: pw + "x", IdempotencyKey: "activate-again-0001"})
	wantCode(t, "code used twice", err, connect.CodeUnauthenticated)

	// The access token the service signed is accepted by the kit's verifier.
	me := patientv1connect.NewPatientServiceClient(bearer(t, e.URL, sess.GetTokens().GetAccessToken()))
	prof, err := me.GetProfile(ctx, &patientv1.GetProfileRequest{})
	if err != nil || prof.GetSubjectUuid() != inv.GetSubjectUuid() {
		t.Fatalf("GetProfile with the activation token: %v, %v", prof, err)
	}

	login, err := e.login("+4915112345678", pw)
	if err != nil || login.GetSubjectUuid() != inv.GetSubjectUuid() {
		t.Fatalf("login: %v, %v", login, err)
	}
	first := login.GetTokens().GetRefreshToken()
	r1, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: first})
	if err != nil || r1.GetTokens().GetRefreshToken() == first {
		t.Fatalf("refresh: %v, %v", r1, err)
	}
	// A retry at once (the answer was lost) gets the same new refresh token.
	retry, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: first})
	if err != nil || retry.GetTokens().GetRefreshToken() != r1.GetTokens().GetRefreshToken() {
		t.Fatalf("retried refresh: %v, %v: want the same new refresh token", retry, err)
	}
	r2, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: r1.GetTokens().GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	// Once its successor was used, the first token again is theft: the session is
	// revoked and the newest token stops working too.
	_, err = e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: first})
	wantCode(t, "reused refresh token", err, connect.CodeUnauthenticated)
	_, err = e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: r2.GetTokens().GetRefreshToken()})
	wantCode(t, "refresh after reuse", err, connect.CodeUnauthenticated)
	for action, want := range map[string]int{"PARTICIPANT_INVITED": 3, "ACCOUNT_ACTIVATED": 1, "LOGIN_SUCCEEDED": 1, "LOGIN_FAILED": 1, "TOKEN_REFRESHED": 3, "TOKEN_REUSE_DETECTED": 1} {
		if n := e.actions(t, d, action); n != want {
			t.Errorf("%s events: %d, want %d", action, n, want)
		}
	}

	// Logout ends a session at once.
	l2, err := e.login("+4915112345678", pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.Logout(ctx, &patientv1.LogoutRequest{RefreshToken: l2.GetTokens().GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	_, err = e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: l2.GetTokens().GetRefreshToken()})
	wantCode(t, "refresh after logout", err, connect.CodeUnauthenticated)

	// Inviting the same mobile or national ID again is refused without saying
	// which, and audited.
	_, err = patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site1))).InviteParticipant(ctx, &patientv1.InviteParticipantRequest{
		FullName: "Someone Else", NationalId: "t22000129", NationalIdCountry: "DE", Mobile: "+4917000000000",
		SiteId: site1, TrialId: trial1, IdempotencyKey: "invite-duplicate-0001"})
	wantCode(t, "duplicate invitation", err, connect.CodeAlreadyExists)
	if n := e.actions(t, d, "INVITATION_REFUSED"); n != 1 {
		t.Errorf("INVITATION_REFUSED events: %d, want 1", n)
	}
	// An investigator cannot invite to a site outside their scope.
	_, err = patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site2))).InviteParticipant(ctx, &patientv1.InviteParticipantRequest{
		FullName: "Someone Else", NationalId: "X1234567", NationalIdCountry: "DE", Mobile: "+4917000000001",
		SiteId: site1, TrialId: trial1, IdempotencyKey: "invite-other-site-01"})
	wantCode(t, "invite outside scope", err, connect.CodePermissionDenied)
}

// Identity release: admins read any subject, investigators only one enrolled at
// their sites (asked of the trial service, failing closed), analysts and
// patients never; every release and refusal is audited.
func TestIdentityRelease(t *testing.T) {
	e := start(t)
	d := e.DB(t)
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	subject := inv.GetSubjectUuid()
	req := &patientv1.GetPatientIdentityRequest{SubjectUuid: subject, Reason: "PHQ-9 item 9 positive: safety call"}

	admin := patientv1connect.NewPatientServiceClient(e.Client(t, platformtest.Admin()))
	res, err := admin.GetPatientIdentity(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetFullName() != "Jean Dupont" || res.GetNationalId() != "1850775123456" || res.GetMobile() != "+33612345678" || res.GetAuditEventId() == "" {
		t.Fatalf("identity: %v", res)
	}
	var reason, action string
	if err := d.ReadSQL().QueryRowContext(ctx, `SELECT action, reason FROM audit_events WHERE event_id = $1`, res.GetAuditEventId()).Scan(&action, &reason); err != nil {
		t.Fatal(err)
	}
	if action != "PII_READ" || reason != req.GetReason() {
		t.Fatalf("audit event of the read: %s %q", action, reason)
	}

	// Not yet enrolled: the investigator learns nothing.
	invClient := patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site1)))
	_, err = invClient.GetPatientIdentity(ctx, req)
	wantCode(t, "investigator, not enrolled", err, connect.CodePermissionDenied)
	e.trial.mu.Lock()
	e.trial.enrollments = append(e.trial.enrollments, &trialv1.Enrollment{SubjectUuid: subject, SiteId: site1, TrialId: trial1})
	e.trial.mu.Unlock()
	if _, err := invClient.GetPatientIdentity(ctx, req); err != nil {
		t.Fatalf("investigator of the enrolling site: %v", err)
	}
	_, err = patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site2))).GetPatientIdentity(ctx, req)
	wantCode(t, "investigator of another site", err, connect.CodePermissionDenied)

	for name, caller := range map[string]auth.Caller{"analyst": platformtest.Analyst(), "patient": platformtest.Patient(), "service": platformtest.Service("epro")} {
		_, err := patientv1connect.NewPatientServiceClient(e.Client(t, caller)).GetPatientIdentity(ctx, req)
		wantCode(t, name, err, connect.CodePermissionDenied)
	}
	// An administrator's stated context must be true.
	_, err = admin.GetPatientIdentity(ctx, &patientv1.GetPatientIdentityRequest{SubjectUuid: subject, Reason: req.GetReason(), SiteId: site2})
	wantCode(t, "admin, wrong site context", err, connect.CodeFailedPrecondition)
	_, err = admin.GetPatientIdentity(ctx, &patientv1.GetPatientIdentityRequest{SubjectUuid: "00000000-0000-4000-8000-000000000000", Reason: req.GetReason()})
	wantCode(t, "admin, unknown subject", err, connect.CodeNotFound)
	if n := e.actions(t, d, "PII_READ"); n != 2 {
		t.Errorf("PII_READ events: %d, want 2", n)
	}
	if n := e.actions(t, d, "PII_READ_DENIED"); n < 2 {
		t.Errorf("PII_READ_DENIED events: %d, want at least 2", n)
	}

	// GET is refused for it (IDEMPOTENT, not NO_SIDE_EFFECTS).
	get, err := http.NewRequest(http.MethodGet, e.URL+patientv1connect.PatientServiceGetPatientIdentityProcedure+"?encoding=json&message={}", nil)
	if err != nil {
		t.Fatal(err)
	}
	get.Header.Set("Authorization", "Bearer "+e.Token(t, platformtest.Admin()))
	hres, err := http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	hres.Body.Close()
	if hres.StatusCode/100 == 2 {
		t.Fatalf("GET GetPatientIdentity answered %s", hres.Status)
	}
}

// When the trial service cannot answer, an investigator's read fails closed.
func TestIdentityFailsClosedWithoutTrialService(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	e := start(t, platformtest.WithDependency(patient.TrialDependency, dead.URL))
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	_, err := patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site1))).GetPatientIdentity(ctx,
		&patientv1.GetPatientIdentityRequest{SubjectUuid: inv.GetSubjectUuid(), Reason: "safety follow-up call"})
	wantCode(t, "trial service down", err, connect.CodeUnavailable)
}

// No column of any table holds a name, national ID or mobile in any form it
// was given, after invitations, activations and sign-ins.
func TestRawRowsHoldNoPII(t *testing.T) {
	var logs syncBuffer
	e := start(t, platformtest.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	people := []struct{ name, nid, mobile string }{
		{"Erika Mustermann", "T22000129", "+4915112345678"},
		{"Jean Dupont", "185-07-75123456", "+33612345678"},
	}
	for _, p := range people {
		inv := e.invite(t, p.name, p.nid, p.mobile)
		e.activate(t, p.mobile, inv.GetActivationCode(), pw)
		if _, err := e.login(p.mobile, pw); err != nil {
			t.Fatal(err)
		}
	}
	// A self-registration confirmed, one pending and one of a known number, with
	// their SMS jobs worked.
	regs := []struct{ name, nid, mobile string }{
		{"Ada Lovelace", "QQ123456C", "+447700900002"},
		{"Grace Hopper", "QQ654321A", "+447700900009"},
	}
	for _, r := range regs {
		res, err := e.auth.Register(ctx, &patientv1.RegisterRequest{Mobile: r.mobile, Password: pw, FullName: r.name,
			NationalId: r.nid, NationalIdCountry: "GB", IdempotencyKey: "register-" + uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		if r.mobile == "+447700900002" {
			eventually(t, "the SMS", func() bool { return len(e.sms.to(r.mobile)) == 1 })
			code := smsCode.FindStringSubmatch(e.sms.to(r.mobile)[0].Text)[1]
			if _, err := e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: res.GetCodeSent().GetRegistrationId(),
				Code: code, IdempotencyKey: "confirm-" + uuid.NewString()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.register(t, people[0].mobile, "ZZ0000001")
	eventually(t, "every SMS", func() bool { return len(e.sms.to("+447700900009")) == 1 && len(e.sms.to(people[0].mobile)) == 1 })
	people = append(people, regs...)
	var needles []string
	for _, p := range people {
		digits := strings.NewReplacer(" ", "", "+", "", "-", "").Replace(p.mobile)
		needles = append(needles, p.name, strings.ToLower(p.name), strings.ToUpper(p.name), strings.Fields(p.name)[1],
			p.nid, strings.ToLower(p.nid), strings.ReplaceAll(p.nid, "-", ""), p.mobile, "+"+digits, digits, digits[2:])
	}
	d := e.DB(t)
	rows, err := d.ReadSQL().QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("found only tables %v", tables)
	}
	scanned := 0
	for _, table := range tables {
		rows, err := d.ReadSQL().QueryContext(ctx, fmt.Sprintf(`SELECT * FROM %q`, table))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				scanned++
				forms := []string{string(v), base64.StdEncoding.EncodeToString(v)}
				for _, f := range forms {
					for _, n := range needles {
						if strings.Contains(strings.ToLower(f), strings.ToLower(n)) {
							t.Errorf("%s.%s holds %q", table, cols[i], n)
						}
					}
				}
			}
		}
		rows.Close()
	}
	// Nor does any log line.
	for _, n := range needles {
		if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(n)) {
			t.Errorf("the logs hold %q", n)
		}
	}
	if !strings.Contains(logs.String(), patientv1connect.PatientServiceInviteParticipantProcedure) {
		t.Errorf("no rpc log lines were captured:\n%s", logs.String())
	}
	if scanned < 100 {
		t.Fatalf("scanned only %d values", scanned)
	}
	_ = dialect.Postgres
}
