package patient_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func (e *env) staff(t testing.TB, username string, role authzv1.Role, sites, trials []string) string {
	t.Helper()
	res, err := patientv1connect.NewAuthServiceClient(e.Client(t, platformtest.Admin())).CreateStaffAccount(ctx, &patientv1.CreateStaffAccountRequest{
		Username: username, DisplayName: "Staff " + username, Password: pw, Role: role, SiteIds: sites, TrialIds: trials,
		IdempotencyKey: "staff-" + uuid.NewString()})
	if err != nil {
		t.Fatalf("create staff %s: %v", username, err)
	}
	return res.GetStaffId()
}

func (e *env) staffLogin(username, password string) (*patientv1.LoginResponse, error) {
	return e.auth.Login(ctx, &patientv1.LoginRequest{Identifier: &patientv1.LoginRequest_Username{Username: username}, Password: password})
}

func (e *env) refreshFails(t *testing.T, what, token string) {
	t.Helper()
	_, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: token})
	wantCode(t, what, err, connect.CodeUnauthenticated)
}

// Password change, suspension, access reset and a role change each cut refresh
// at once; each is audited.
func TestLifecycleCutsRefreshAtOnce(t *testing.T) {
	e := start(t)
	d := e.DB(t)
	inv := e.invite(t, "Erika Mustermann", "T22000129", "+4915112345678")
	e.activate(t, "+4915112345678", inv.GetActivationCode(), pw)
	a, err := e.login("+4915112345678", pw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.login("+4915112345678", pw)
	if err != nil {
		t.Fatal(err)
	}
	// Password change from session a revokes b and keeps a.
	me := patientv1connect.NewAuthServiceClient(bearer(t, e.URL, a.GetTokens().GetAccessToken()))
	_, err = me.ChangePassword(ctx, &patientv1.ChangePasswordRequest{CurrentPassword: "wrong password 1", NewPassword: pw + "!", IdempotencyKey: "change-" + uuid.NewString()})
	wantCode(t, "wrong current password", err, connect.CodeUnauthenticated)
	change := &patientv1.ChangePasswordRequest{CurrentPassword: pw, NewPassword: pw + "!", IdempotencyKey: "change-" + uuid.NewString()}
	ch, err := me.ChangePassword(ctx, change)
	if err != nil || ch.GetSessionsRevoked() < 1 {
		t.Fatalf("change password: %v, %v", ch, err)
	}
	// A retry with the key gets the same answer, although the password changed.
	if again, err := me.ChangePassword(ctx, change); err != nil || !again.GetChangedAt().AsTime().Equal(ch.GetChangedAt().AsTime()) {
		t.Fatalf("retried change: %v, %v", again, err)
	}
	e.refreshFails(t, "other session after password change", b.GetTokens().GetRefreshToken())
	if _, err := e.auth.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: a.GetTokens().GetRefreshToken()}); err != nil {
		t.Fatalf("the changing session must stay signed in: %v", err)
	}
	_, err = e.login("+4915112345678", pw)
	wantCode(t, "old password", err, connect.CodeUnauthenticated)

	// Suspension: refresh refused at once, sign-in refused (after the right
	// password) with permission_denied; reactivation restores sign-in.
	c, err := e.login("+4915112345678", pw+"!")
	if err != nil {
		t.Fatal(err)
	}
	admin := patientv1connect.NewAuthServiceClient(e.Client(t, platformtest.Admin()))
	sus, err := admin.SuspendAccount(ctx, &patientv1.SuspendAccountRequest{Account: &patientv1.SuspendAccountRequest_SubjectUuid{SubjectUuid: inv.GetSubjectUuid()}, Reason: "participant withdrew consent"})
	if err != nil || sus.GetStatus() != patientv1.AccountStatus_ACCOUNT_STATUS_SUSPENDED || sus.GetSessionsRevoked() < 1 {
		t.Fatalf("suspend: %v, %v", sus, err)
	}
	e.refreshFails(t, "refresh after suspension", c.GetTokens().GetRefreshToken())
	_, err = e.login("+4915112345678", pw+"!")
	wantCode(t, "login while suspended", err, connect.CodePermissionDenied)
	again, err := admin.SuspendAccount(ctx, &patientv1.SuspendAccountRequest{Account: &patientv1.SuspendAccountRequest_SubjectUuid{SubjectUuid: inv.GetSubjectUuid()}, Reason: "participant withdrew consent"})
	if err != nil || again.GetSessionsRevoked() != 0 {
		t.Fatalf("suspend again: %v, %v", again, err)
	}
	if n := e.actions(t, d, "ACCOUNT_STATUS_CHANGED"); n != 1 {
		t.Fatalf("ACCOUNT_STATUS_CHANGED after two suspensions: %d, want 1", n)
	}
	re, err := admin.ReactivateAccount(ctx, &patientv1.ReactivateAccountRequest{Account: &patientv1.ReactivateAccountRequest_SubjectUuid{SubjectUuid: inv.GetSubjectUuid()}, Reason: "consent re-confirmed at visit"})
	if err != nil || re.GetStatus() != patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE {
		t.Fatalf("reactivate: %v, %v", re, err)
	}
	c, err = e.login("+4915112345678", pw+"!")
	if err != nil {
		t.Fatal(err)
	}

	// Access reset: refresh refused, the password stops working, the new code
	// activates.
	reset, err := admin.ResetAccess(ctx, &patientv1.ResetAccessRequest{Account: &patientv1.ResetAccessRequest_SubjectUuid{SubjectUuid: inv.GetSubjectUuid()},
		Reason: "lost phone, reported at visit W6", IdempotencyKey: "reset-" + uuid.NewString()})
	if err != nil || len(reset.GetActivationCode()) != 8 {
		t.Fatalf("reset: %v, %v", reset, err)
	}
	e.refreshFails(t, "refresh after reset", c.GetTokens().GetRefreshToken())
	_, err = e.login("+4915112345678", pw+"!")
	wantCode(t, "password after reset", err, connect.CodeUnauthenticated)
	e.activate(t, "+4915112345678", reset.GetActivationCode(), "a brand new passphrase")
	_, err = admin.ResetAccess(ctx, &patientv1.ResetAccessRequest{Account: &patientv1.ResetAccessRequest_StaffId{StaffId: uuid.NewString()},
		Reason: "lost phone, reported at visit W6", IdempotencyKey: "reset-" + uuid.NewString()})
	wantCode(t, "reset an unknown account", err, connect.CodeNotFound)

	// A role or scope change revokes the staff member's sessions.
	id := e.staff(t, "j.moreau", authzv1.Role_ROLE_INVESTIGATOR, []string{site1}, []string{trial1})
	s, err := e.staffLogin("j.moreau", pw)
	if err != nil || s.GetStaffId() != id || len(s.GetSiteIds()) != 1 {
		t.Fatalf("staff login: %v, %v", s, err)
	}
	up, err := admin.UpdateStaffAccount(ctx, &patientv1.UpdateStaffAccountRequest{StaffId: id, Role: authzv1.Role_ROLE_INVESTIGATOR,
		SiteIds: []string{site1, site2}, TrialIds: []string{trial1}, Reason: "moved to the Lyon site as well"})
	if err != nil || up.GetSessionsRevoked() != 1 || len(up.GetAccount().GetSiteIds()) != 2 {
		t.Fatalf("update staff: %v, %v", up, err)
	}
	e.refreshFails(t, "refresh after a scope change", s.GetTokens().GetRefreshToken())
	s, err = e.staffLogin("j.moreau", pw)
	if err != nil || len(s.GetSiteIds()) != 2 {
		t.Fatalf("login after the change: %v, %v", s, err)
	}
	for action, want := range map[string]int{"PASSWORD_CHANGED": 3, "ACCESS_RESET": 1, "SITE_SCOPES_CHANGED": 2, "SESSIONS_REVOKED": 4} {
		if n := e.actions(t, d, action); n != want {
			t.Errorf("%s events: %d, want %d", action, n, want)
		}
	}
	// The notification service lists the site's staff; nobody else may.
	list, err := patientv1connect.NewAuthServiceClient(e.Client(t, platformtest.Service("notification"))).ListSiteStaff(ctx, &patientv1.ListSiteStaffRequest{SiteId: site2, TrialId: trial1})
	if err != nil || len(list.GetStaff()) != 1 || list.GetStaff()[0].GetStaffId() != id {
		t.Fatalf("site staff: %v, %v", list, err)
	}
	_, err = patientv1connect.NewAuthServiceClient(e.Client(t, platformtest.Service("epro"))).ListSiteStaff(ctx, &patientv1.ListSiteStaffRequest{SiteId: site2, TrialId: trial1})
	wantCode(t, "epro lists site staff", err, connect.CodePermissionDenied)
}

// Failed sign-ins slow and then lock an identifier, known or not, and the
// lockout of an account is audited.
func TestLoginLockout(t *testing.T) {
	e := start(t)
	d := e.DB(t)
	e.staff(t, "a.admin", authzv1.Role_ROLE_ADMIN, nil, nil)
	for _, user := range []string{"a.admin", "nobody.here"} {
		for i := range e.cfg.LockoutAfter - 1 {
			_, err := e.staffLogin(user, "not the password")
			wantCode(t, user+" failure "+itoa(i), err, connect.CodeUnauthenticated)
		}
		_, err := e.staffLogin(user, "not the password")
		wantCode(t, user+" last failure", err, connect.CodeResourceExhausted)
		_, err = e.staffLogin(user, pw)
		wantCode(t, user+" while locked, right password", err, connect.CodeResourceExhausted)
	}
	if n := e.actions(t, d, "ACCOUNT_LOCKED"); n != 1 {
		t.Fatalf("ACCOUNT_LOCKED events: %d, want 1 (unknown identifiers have no account)", n)
	}
	if n := e.actions(t, d, "LOGIN_FAILED"); n != 2*(e.cfg.LockoutAfter+1) {
		t.Fatalf("LOGIN_FAILED events: %d, want %d", n, 2*(e.cfg.LockoutAfter+1))
	}
	// The same story in the metrics, without an identifier.
	for labels, want := range map[[2]string]float64{
		{"patient_login_failures_total", "credentials"}: float64(2 * e.cfg.LockoutAfter),
		{"patient_login_failures_total", "locked"}:      2,
		{"patient_lockouts_total", "known"}:             1,
		{"patient_lockouts_total", "unknown"}:           1,
	} {
		key := "reason"
		if labels[0] == "patient_lockouts_total" {
			key = "account"
		}
		if v, _ := platformtest.Metric(t, e.URL, labels[0], map[string]string{key: labels[1]}); v != want {
			t.Errorf("%s{%s=%q} = %v, want %v", labels[0], key, labels[1], v, want)
		}
	}
	// A weak password is refused at creation.
	_, err := patientv1connect.NewAuthServiceClient(e.Client(t, platformtest.Admin())).CreateStaffAccount(ctx, &patientv1.CreateStaffAccountRequest{
		Username: "weak.one", DisplayName: "Weak", Password: "password123", Role: authzv1.Role_ROLE_ADMIN, IdempotencyKey: "staff-" + uuid.NewString()})
	wantCode(t, "breached password", err, connect.CodeInvalidArgument)
}

func itoa(i int) string { return string(rune('0' + i)) }

// Service tokens: a configured secret (either of two during rotation) gives a
// SERVICE token the kit accepts; a wrong one is refused and audited.
func TestIssueServiceToken(t *testing.T) {
	cfg := testConfig(t)
	secrets, err := patient.ParseServiceSecrets("epro=" + repeat("a", 40) + "," + repeat("b", 40) + ";notification=" + repeat("c", 40))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServiceSecrets = secrets
	e := startWith(t, cfg)
	for _, secret := range []string{repeat("a", 40), repeat("b", 40)} {
		res, err := e.auth.IssueServiceToken(ctx, &patientv1.IssueServiceTokenRequest{ServiceName: "epro", ClientSecret: secret})
		if err != nil || res.GetServiceName() != "epro" || res.GetAccessTokenTtlSeconds() > 300 {
			t.Fatalf("service token: %v, %v", res, err)
		}
		st, err := patientv1connect.NewPatientServiceClient(bearer(t, e.URL, res.GetAccessToken())).GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()})
		if err != nil || st.GetExists() {
			t.Fatalf("GetSubjectStatus with the service token: %v, %v", st, err)
		}
	}
	for _, bad := range []*patientv1.IssueServiceTokenRequest{{ServiceName: "epro", ClientSecret: repeat("c", 40)}, {ServiceName: "trial", ClientSecret: repeat("a", 40)}} {
		_, err := e.auth.IssueServiceToken(ctx, bad)
		wantCode(t, "wrong service credentials", err, connect.CodeUnauthenticated)
	}
	if n := e.actions(t, e.DB(t), "SERVICE_TOKEN_DENIED"); n != 2 {
		t.Fatalf("SERVICE_TOKEN_DENIED events: %d, want 2", n)
	}

	// The kit's token source does the exchange for a service's outbound calls and
	// reuses the token; a wrong secret is an error, never a call without a token.
	issuer := client.Service("patient", e.URL)
	tokens := platform.NewServiceTokens(issuer, "epro", auth.StaticToken(repeat("b", 40)))
	first, err := tokens.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := tokens.Token(ctx); err != nil || again != first {
		t.Fatalf("second Token: a new token (%v) instead of the one still fresh", err)
	}
	st, err := patientv1connect.NewPatientServiceClient(client.New(issuer, client.WithTokens(tokens))).
		GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()})
	if err != nil || st.GetExists() {
		t.Fatalf("GetSubjectStatus with the exchanged token: %v, %v", st, err)
	}
	if _, err := platform.NewServiceTokens(issuer, "epro", auth.StaticToken(repeat("z", 40))).Token(ctx); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("token with a wrong secret: %v, want unauthenticated", err)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// The keys are published by GetSigningKeys and /.well-known/jwks.json, and a
// verifier built from that document accepts the service's tokens.
func TestSigningKeysPublished(t *testing.T) {
	e := start(t)
	keys, err := e.auth.GetSigningKeys(ctx, &patientv1.GetSigningKeysRequest{})
	if err != nil || len(keys.GetKeys()) != 1 || keys.GetIssuer() != "trialhub" || keys.GetKeys()[0].GetAlg() != "EdDSA" {
		t.Fatalf("keys: %v, %v", keys, err)
	}
	res, err := http.Get(e.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc auth.JWKS
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil || len(doc.Keys) != 1 || doc.Keys[0].Kid != keys.GetKeys()[0].GetKid() {
		t.Fatalf("jwks.json: %v, %v", doc, err)
	}
	inv := e.invite(t, "Jean Dupont", "1850775123456", "+33612345678")
	sess := e.activate(t, "+33612345678", inv.GetActivationCode(), pw)
	remote := auth.NewVerifier(auth.NewRemoteKeys(auth.FetchJWKS(nil, e.URL+"/.well-known/jwks.json"), 0, 0), "trialhub")
	caller, err := remote.Verify(ctx, sess.GetTokens().GetAccessToken())
	if err != nil || caller.Subject != inv.GetSubjectUuid() || caller.Role != authzv1.Role_ROLE_PATIENT {
		t.Fatalf("remote verification: %+v, %v", caller, err)
	}
	// Profile: the patient's own, each change audited.
	me := patientv1connect.NewPatientServiceClient(bearer(t, e.URL, sess.GetTokens().GetAccessToken()))
	up, err := me.UpdateProfile(ctx, &patientv1.UpdateProfileRequest{Profile: &patientv1.Profile{TimeZone: "Europe/Paris", Nickname: "ignored"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"time_zone"}}})
	if err != nil || up.GetProfile().GetTimeZone() != "Europe/Paris" || up.GetProfile().GetNickname() != "" {
		t.Fatalf("update profile: %v, %v", up, err)
	}
	if n := e.actions(t, e.DB(t), "PROFILE_UPDATED"); n != 1 {
		t.Fatalf("PROFILE_UPDATED events: %d, want 1", n)
	}
}

// Sign-in, activation and registration are throttled per client address too,
// whatever identifier each attempt names.
func TestThrottledPerClientAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.PerAddress = 5
	e := startWith(t, cfg)
	for i := range cfg.PerAddress {
		_, err := e.staffLogin("user."+itoa(i), "not the password")
		wantCode(t, "attempt "+itoa(i), err, connect.CodeUnauthenticated)
	}
	_, err := e.staffLogin("someone.new", "not the password")
	wantCode(t, "attempt over the address limit", err, connect.CodeResourceExhausted)
	// Activation counts separately, with its own limit per address.
	for i := range cfg.PerAddress {
		_, err := e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Username{Username: "user." + itoa(i)},
			ActivationCode: "00000000", Password: pw, IdempotencyKey: "activate-" + uuid.NewString()})
		wantCode(t, "activation "+itoa(i), err, connect.CodeUnauthenticated)
	}
	_, err = e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Username{Username: "someone.new"},
		ActivationCode: "00000000", Password: pw, IdempotencyKey: "activate-" + uuid.NewString()})
	wantCode(t, "activation over the address limit", err, connect.CodeResourceExhausted)
}
