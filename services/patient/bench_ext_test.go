package patient_test

import "testing"

// BenchmarkLogin is one patient sign-in end to end on PostgreSQL over Connect:
// the throttle counters, the argon2id check, the session and refresh token rows
// and the audit event.
func BenchmarkLogin(b *testing.B) {
	e := start(b)
	inv := e.invite(b, "Jean Dupont", "1850775123456", "+33612345678")
	e.activate(b, "+33612345678", inv.GetActivationCode(), pw)
	for b.Loop() {
		if _, err := e.login("+33612345678", pw); err != nil {
			b.Fatal(err)
		}
	}
}
