package patient_test

import (
	"regexp"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
)

func (e *env) register(t testing.TB, mobile, nid string) *patientv1.RegistrationPending {
	t.Helper()
	res, err := e.auth.Register(ctx, &patientv1.RegisterRequest{Mobile: mobile, Password: pw, FullName: "Ada Lovelace",
		NationalId: nid, NationalIdCountry: "GB", IdempotencyKey: "register-" + uuid.NewString()})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return res.GetCodeSent()
}

// eventually polls cond with a generous bound: River sends the SMS in the
// background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var smsCode = regexp.MustCompile(`code is (\d{6})`)

// Self-registration answers a new and a known mobile alike; the new number gets
// a code by SMS, the known one a notice; the code signs the new patient in, and
// nothing confirms the known number's registration.
func TestRegisterAnswersAlikeForNewAndKnownMobiles(t *testing.T) {
	e := start(t)
	inv := e.invite(t, "Known Person", "QQ123456C", "+447700900001")
	e.activate(t, "+447700900001", inv.GetActivationCode(), pw)

	fresh := e.register(t, "+447700900002", "QQ654321A")
	known := e.register(t, "+447700900001", "QQ111111B")
	shape := func(p *patientv1.RegistrationPending) *patientv1.RegistrationPending {
		c := proto.Clone(p).(*patientv1.RegistrationPending)
		c.RegistrationId, c.CodeExpiresAt, c.CodeTtlSeconds = "", nil, 0
		return c
	}
	if !proto.Equal(shape(fresh), shape(known)) || fresh.GetRegistrationId() == "" || known.GetRegistrationId() == "" ||
		fresh.GetCodeTtlSeconds() < 590 || known.GetCodeTtlSeconds() < 590 {
		t.Fatalf("answers differ: new %v, known %v", fresh, known)
	}
	eventually(t, "both SMS", func() bool { return len(e.sms.to("+447700900002")) == 1 && len(e.sms.to("+447700900001")) == 1 })
	knownMsg := e.sms.to("+447700900001")[0]
	if smsCode.MatchString(knownMsg.Text) || knownMsg.Key == "" {
		t.Fatalf("the known number got %q (key %q), want a notice without a code", knownMsg.Text, knownMsg.Key)
	}
	m := smsCode.FindStringSubmatch(e.sms.to("+447700900002")[0].Text)
	if m == nil {
		t.Fatalf("the new number got %q, want a code", e.sms.to("+447700900002")[0].Text)
	}
	// The known number's registration cannot be confirmed, with any code.
	_, err := e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: known.GetRegistrationId(), Code: m[1], IdempotencyKey: "confirm-" + uuid.NewString()})
	wantCode(t, "confirm a known number", err, connect.CodeUnauthenticated)
	_, err = e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: fresh.GetRegistrationId(), Code: "000000", IdempotencyKey: "confirm-" + uuid.NewString()})
	if m[1] != "000000" {
		wantCode(t, "wrong code", err, connect.CodeUnauthenticated)
	}
	res, err := e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: fresh.GetRegistrationId(), Code: m[1], IdempotencyKey: "confirm-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	sess := res.GetSession()
	if _, err := uuid.Parse(sess.GetSubjectUuid()); err != nil || sess.GetTokens().GetAccessToken() == "" {
		t.Fatalf("session: %v", sess)
	}
	if _, err := e.login("+447700900002", pw); err != nil {
		t.Fatalf("login after confirmation: %v", err)
	}
	// The code works once.
	_, err = e.auth.ConfirmRegistration(ctx, &patientv1.ConfirmRegistrationRequest{RegistrationId: fresh.GetRegistrationId(), Code: m[1], IdempotencyKey: "confirm-" + uuid.NewString()})
	wantCode(t, "code used twice", err, connect.CodeUnauthenticated)

	// Admins see the outcome in the trail; the caller never does.
	list, err := patientv1connect.NewAuditServiceClient(e.Client(t, adminCaller())).ListAuditEvents(ctx, &patientv1.ListAuditEventsRequest{
		Actions: []patientv1.AuditAction{patientv1.AuditAction_AUDIT_ACTION_REGISTRATION_REQUESTED}})
	if err != nil || len(list.GetEvents()) != 2 {
		t.Fatalf("REGISTRATION_REQUESTED events: %v, %v", list, err)
	}
	outcomes := map[string]string{}
	for _, ev := range list.GetEvents() {
		outcomes[ev.GetRecordId()] = ev.GetNewValue()
	}
	if outcomes[fresh.GetRegistrationId()] != "code_sent" || outcomes[known.GetRegistrationId()] != "already_registered" {
		t.Fatalf("outcomes: %v", outcomes)
	}
}

// Registration is throttled per mobile, with the same answer for known and
// unknown numbers.
func TestRegisterThrottledPerMobile(t *testing.T) {
	e := start(t)
	for i := range e.cfg.PerMobile {
		e.register(t, "+447700900003", "QQ00000"+string(rune('0'+i)))
	}
	_, err := e.auth.Register(ctx, &patientv1.RegisterRequest{Mobile: "+447700900003", Password: pw, FullName: "Ada Lovelace",
		NationalId: "QQ999999", NationalIdCountry: "GB", IdempotencyKey: "register-" + uuid.NewString()})
	wantCode(t, "registration over the limit", err, connect.CodeResourceExhausted)
}

// A retried invitation (same key, same body) names the same subject with a new
// code, and the earlier code stops working; no code is kept in clear.
func TestInviteRetryIssuesAFreshCode(t *testing.T) {
	e := start(t)
	inv := patientv1connect.NewPatientServiceClient(e.Client(t, investigator(site1)))
	req := &patientv1.InviteParticipantRequest{FullName: "Jean Dupont", NationalId: "1850775123456", NationalIdCountry: "FR",
		Mobile: "+33612345678", SiteId: site1, TrialId: trial1, IdempotencyKey: "invite-retry-000001"}
	first, err := inv.InviteParticipant(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := inv.InviteParticipant(ctx, req)
	if err != nil || second.GetSubjectUuid() != first.GetSubjectUuid() || second.GetActivationCode() == first.GetActivationCode() {
		t.Fatalf("retry: %v, %v (first %v)", second, err, first)
	}
	var stored, rows int
	if err := e.DB(t).ReadSQL().QueryRowContext(ctx, `SELECT COUNT(*), COUNT(*) FILTER (WHERE position(convert_to($1, 'UTF8') in response) > 0 OR position(convert_to($2, 'UTF8') in response) > 0) FROM idempotency_keys`,
		first.GetActivationCode(), second.GetActivationCode()).Scan(&rows, &stored); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || stored != 0 {
		t.Fatalf("idempotency_keys: %d rows, %d holding a code; want rows and no code", rows, stored)
	}
	_, err = e.auth.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{Identifier: &patientv1.ActivateAccountRequest_Mobile{Mobile: "+33612345678"},
		ActivationCode: first.GetActivationCode(), Password: pw, IdempotencyKey: "activate-" + uuid.NewString()})
	wantCode(t, "the earlier code", err, connect.CodeUnauthenticated)
	e.activate(t, "+33612345678", second.GetActivationCode(), pw)
	_, err = inv.InviteParticipant(ctx, req)
	wantCode(t, "retry after activation", err, connect.CodeFailedPrecondition)
}
