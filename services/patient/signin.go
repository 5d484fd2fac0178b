package patient

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/internal/password"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// The one answer of each refused credential, whatever was wrong.
var (
	errCodeRefused  = connect.NewError(connect.CodeUnauthenticated, "the code was not accepted")
	errLoginRefused = connect.NewError(connect.CodeUnauthenticated, "the credentials were not accepted")
)

var errWrongPassword = errors.New("wrong current password")

// maxCodeAttempts wrong codes void an activation code.
const maxCodeAttempts = 5

// identifierKey is the throttle key of a sign-in identifier: a blind index,
// never the identifier itself.
func (s *Service) identifierKey(kind, value string) string { return s.pii.index.Of("id:"+kind, value) }

// ActivateAccount sets the password of a pending account with its activation
// code and signs it in. The stored idempotent answer never holds tokens: a
// retry with the same key gets the same account with a fresh token pair.
func (s *Service) ActivateAccount(ctx context.Context, req *patientv1.ActivateAccountRequest) (*patientv1.ActivateAccountResponse, error) {
	var find func(ctx context.Context, c *ent.Client) (*account, error)
	var idKey string
	switch id := req.GetIdentifier().(type) {
	case *patientv1.ActivateAccountRequest_Mobile:
		mobile, err := vault.NormaliseMobile(id.Mobile)
		if err != nil {
			return nil, errCodeRefused
		}
		idKey = s.identifierKey("mobile", mobile)
		find = func(ctx context.Context, c *ent.Client) (*account, error) { return s.findByMobile(ctx, c, mobile) }
	case *patientv1.ActivateAccountRequest_Username:
		idKey = s.identifierKey("username", id.Username)
		find = func(ctx context.Context, c *ent.Client) (*account, error) { return findByUsername(ctx, c, id.Username) }
	case *patientv1.ActivateAccountRequest_SubjectUuid:
		idKey = s.identifierKey("subject", id.SubjectUuid)
		find = func(ctx context.Context, c *ent.Client) (*account, error) {
			return loadAccount(ctx, c, kindPatient, id.SubjectUuid)
		}
	}
	if err := password.Validate(req.GetPassword()); err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "password: %s", err.Error())
	}
	if err := s.admit(ctx, "activate", s.cfg.LockoutAfter, idKey); err != nil {
		return nil, err
	}
	var rejected *account
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.ActivateAccountResponse, error) {
			c := entTx(tx)
			acc, err := find(ctx, c)
			if errors.Is(err, errNoAccount) {
				return nil, errCodeRefused
			} else if err != nil {
				return nil, err
			}
			ok := acc.status == statusPending && acc.activationHash != "" && acc.attempts < maxCodeAttempts &&
				acc.activationExpiry != nil && acc.activationExpiry.After(s.now()) &&
				subtle.ConstantTimeCompare([]byte(acc.activationHash), []byte(s.pii.codeHash("activation", req.GetActivationCode()))) == 1
			if !ok {
				rejected = acc
				return nil, errCodeRefused
			}
			if err := s.updateAccount(ctx, c, acc.p, accountUpdate{status: ptr(statusActive), passwordHash: ptr(password.Hash(req.GetPassword())),
				activationHash: ptr(""), clearExpiry: true, attempts: ptr(0)}); err != nil {
				return nil, err
			}
			for _, e := range []audit.Event{
				{Actor: acc.p.actor(), Action: "ACCOUNT_ACTIVATED", RecordType: acc.p.recordType(), RecordID: acc.p.id, SubjectUUID: acc.p.subject(),
					Field: "status", OldValue: statusPending, NewValue: statusActive},
				{Actor: acc.p.actor(), Action: "PASSWORD_CHANGED", RecordType: acc.p.recordType(), RecordID: acc.p.id, SubjectUUID: acc.p.subject()},
			} {
				if _, err := s.audit.Append(ctx, tx, e); err != nil {
					return nil, err
				}
			}
			return &patientv1.ActivateAccountResponse{Outcome: &patientv1.ActivateAccountResponse_Session{Session: sessionOf(acc.p, nil)}}, nil
		})
	if rejected != nil {
		s.rejectCode(ctx, rejected)
		return nil, errCodeRefused
	}
	if err != nil {
		return nil, db.ConnectError(err, "account")
	}
	if err := s.signIn(ctx, res.GetSession()); err != nil {
		return nil, err
	}
	return res, nil
}

// signIn issues the tokens of a session answer that was stored without them
// (idempotency records never hold tokens), for the account as it is now.
func (s *Service) signIn(ctx context.Context, sess *patientv1.Session) error {
	p, err := s.principalOf(ctx, sess)
	if err != nil {
		return err
	}
	return db.ConnectError(s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		tokens, _, err := s.issue(ctx, c, p, "")
		sess.Tokens = tokens
		return err
	}), "session")
}

// rejectCode counts a wrong activation code and audits CODE_REJECTED, in a
// transaction of its own so the count survives the refusal.
func (s *Service) rejectCode(ctx context.Context, acc *account) {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		n := acc.attempts + 1
		if err := s.updateAccount(ctx, c, acc.p, accountUpdate{attempts: &n}); err != nil {
			return err
		}
		_, err := s.audit.Append(ctx, tx, audit.Event{Action: "CODE_REJECTED", RecordType: acc.p.recordType(), RecordID: acc.p.id,
			SubjectUUID: acc.p.subject(), Field: "attempts", NewValue: itoa(n)})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record a rejected activation code", "error", err.Error())
	}
}

// principalOf reads the principal a (token-less) session answer names, as the
// account is now.
func (s *Service) principalOf(ctx context.Context, sess *patientv1.Session) (principal, error) {
	kind, id := kindStaff, sess.GetStaffId()
	if sess.GetSubjectUuid() != "" {
		kind, id = kindPatient, sess.GetSubjectUuid()
	}
	acc, err := loadAccount(ctx, s.ent, kind, id)
	if err != nil {
		return principal{}, db.ConnectError(err, "account")
	}
	return acc.p, nil
}

func sessionOf(p principal, tokens *patientv1.TokenPair) *patientv1.Session {
	sess := &patientv1.Session{Tokens: tokens, Role: p.role, SiteIds: p.sites, TrialIds: p.trials}
	if p.kind == kindPatient {
		sess.Principal = &patientv1.Session_SubjectUuid{SubjectUuid: p.id}
	} else {
		sess.Principal = &patientv1.Session_StaffId{StaffId: p.id}
	}
	return sess
}

// Login signs a patient (mobile) or staff member (username) in. Unknown account,
// wrong password and pending account answer alike, after the same argon2id work.
func (s *Service) Login(ctx context.Context, req *patientv1.LoginRequest) (*patientv1.LoginResponse, error) {
	var find func(ctx context.Context, c *ent.Client) (*account, error)
	var idKey string
	switch id := req.GetIdentifier().(type) {
	case *patientv1.LoginRequest_Mobile:
		mobile, err := vault.NormaliseMobile(id.Mobile)
		if err != nil {
			mobile = id.Mobile // still counted and answered like any unknown number
		}
		idKey = s.identifierKey("mobile", mobile)
		find = func(ctx context.Context, c *ent.Client) (*account, error) { return s.findByMobile(ctx, c, mobile) }
	case *patientv1.LoginRequest_Username:
		idKey = s.identifierKey("username", id.Username)
		find = func(ctx context.Context, c *ent.Client) (*account, error) { return findByUsername(ctx, c, id.Username) }
	}
	key := "login:" + idKey
	if err := s.admit(ctx, "login", 1<<30); err != nil {
		s.met.loginFailures.WithLabelValues(failThrottled).Inc()
		s.loginFailed(ctx, nil, "throttled")
		return nil, err
	}
	if until, err := s.lockedUntil(ctx, key); err != nil {
		return nil, db.ConnectError(err, "sign-in")
	} else if !until.IsZero() {
		s.met.loginFailures.WithLabelValues(failLocked).Inc()
		s.loginFailed(ctx, nil, "locked")
		return nil, errThrottled
	}
	acc, err := find(ctx, s.ent)
	if err != nil && !errors.Is(err, errNoAccount) {
		return nil, db.ConnectError(err, "sign-in")
	}
	hash := ""
	if acc != nil {
		hash = acc.passwordHash
	}
	if !password.Check(hash, req.GetPassword()) || acc.status == statusPending {
		return nil, s.failLogin(ctx, key, acc)
	}
	if acc.status != statusActive {
		s.met.loginFailures.WithLabelValues(failInactive).Inc()
		s.loginFailed(ctx, acc, "account "+acc.status)
		return nil, errorf(connect.CodePermissionDenied, "this account is suspended or closed")
	}
	var tokens *patientv1.TokenPair
	err = s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		var sid string
		var err error
		if tokens, sid, err = s.issue(ctx, c, acc.p, ""); err != nil {
			return err
		}
		if err := s.clear(ctx, tx, key); err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Event{Actor: acc.p.actor(), Action: "LOGIN_SUCCEEDED", RecordType: "SESSION", RecordID: sid, SubjectUUID: acc.p.subject()})
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "sign-in")
	}
	sess := sessionOf(acc.p, tokens)
	res := &patientv1.LoginResponse{Outcome: &patientv1.LoginResponse_Tokens{Tokens: tokens}, Role: sess.Role, SiteIds: sess.SiteIds, TrialIds: sess.TrialIds}
	if acc.p.kind == kindPatient {
		res.Principal = &patientv1.LoginResponse_SubjectUuid{SubjectUuid: acc.p.id}
	} else {
		res.Principal = &patientv1.LoginResponse_StaffId{StaffId: acc.p.id}
	}
	return res, nil
}

// failLogin counts a failed sign-in of an identifier, locks it past the limit
// (ACCOUNT_LOCKED for an account), audits LOGIN_FAILED, slows the answer after
// SlowAfter failures, and returns the one refusal.
func (s *Service) failLogin(ctx context.Context, key string, acc *account) error {
	var n int
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		var err error
		if n, _, err = s.count(ctx, tx, key); err != nil {
			return err
		}
		ev := audit.Event{Action: "LOGIN_FAILED", RecordType: "SESSION", Reason: "credentials not accepted"}
		if acc != nil {
			ev.RecordType, ev.RecordID, ev.SubjectUUID = acc.p.recordType(), acc.p.id, acc.p.subject()
		}
		if _, err := s.audit.Append(ctx, tx, ev); err != nil {
			return err
		}
		if n >= s.cfg.LockoutAfter {
			until := s.now().Add(s.cfg.LockoutWindow)
			if err := s.lock(ctx, tx, key, until); err != nil {
				return err
			}
			if acc != nil {
				_, err = s.audit.Append(ctx, tx, audit.Event{Action: "ACCOUNT_LOCKED", RecordType: acc.p.recordType(), RecordID: acc.p.id,
					SubjectUUID: acc.p.subject(), Field: "locked_until", NewValue: until.Format(time.RFC3339)})
			}
		}
		return err
	})
	if err != nil {
		return db.ConnectError(err, "sign-in")
	}
	s.met.loginFailures.WithLabelValues(failCredentials).Inc()
	if n >= s.cfg.LockoutAfter {
		known := "unknown"
		if acc != nil {
			known = "known"
		}
		s.met.lockouts.WithLabelValues(known).Inc()
	}
	if extra := n - s.cfg.SlowAfter; extra > 0 {
		delay := min(time.Duration(extra)*250*time.Millisecond, 2*time.Second)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
	}
	if n >= s.cfg.LockoutAfter {
		return errThrottled
	}
	return errLoginRefused
}

// loginFailed audits a refused sign-in that counts nothing (throttled, locked,
// suspended).
func (s *Service) loginFailed(ctx context.Context, acc *account, why string) {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, _ *ent.Client) error {
		ev := audit.Event{Action: "LOGIN_FAILED", RecordType: "SESSION", Reason: why}
		if acc != nil {
			ev.RecordType, ev.RecordID, ev.SubjectUUID = acc.p.recordType(), acc.p.id, acc.p.subject()
		}
		_, err := s.audit.Append(ctx, tx, ev)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record a failed sign-in", "error", err.Error())
	}
}

// RefreshToken rotates a refresh token. A used token presented again revokes the
// whole session (theft) and is audited as TOKEN_REUSE_DETECTED.
func (s *Service) RefreshToken(ctx context.Context, req *patientv1.RefreshTokenRequest) (*patientv1.RefreshTokenResponse, error) {
	var tokens *patientv1.TokenPair
	reused := false
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		rt, sess, err := liveSession(ctx, c, req.GetRefreshToken())
		if ent.IsNotFound(err) {
			return errRefreshRefused
		} else if err != nil {
			return err
		}
		now := s.now()
		if sess.RevokedAt != nil || !sess.ExpiresAt.After(now) || !rt.ExpiresAt.After(now) {
			return errRefreshRefused
		}
		acc, err := loadAccount(ctx, c, sess.AccountKind, sess.AccountID)
		if err != nil {
			return errRefreshRefused
		}
		// Consume the token only if nobody did: two concurrent refreshes with one
		// token cannot both succeed.
		n, err := c.RefreshToken.Update().Where(refreshTokenUnused(rt.ID)...).SetUsedAt(now).Save(ctx)
		if err != nil {
			return err
		}
		if acc.status != statusActive {
			return errRefreshRefused
		}
		successor := s.successorOf(req.GetRefreshToken())
		retry := ""
		if n == 0 {
			// Used before: a retry of a refresh whose answer was lost gets the same
			// successor while that is fresh and unused; anything else is theft.
			next, err := c.RefreshToken.Get(ctx, hashToken(successor))
			if err != nil || next.UsedAt != nil || rt.UsedAt == nil || now.Sub(*rt.UsedAt) > refreshRetryGrace {
				reused = true
				return nil
			}
			retry = "retry"
		}
		if tokens, _, err = s.issueWith(ctx, c, acc.p, sess.ID, successor, retry == ""); err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Event{Actor: acc.p.actor(), Action: "TOKEN_REFRESHED", RecordType: "SESSION", RecordID: sess.ID,
			SubjectUUID: acc.p.subject(), Reason: retry})
		return err
	})
	if errors.Is(err, errRefreshRefused) {
		return nil, connect.NewError(connect.CodeUnauthenticated, errRefreshRefused.Error())
	}
	if err != nil {
		return nil, db.ConnectError(err, "session")
	}
	if reused {
		if err := s.revokeForReuse(ctx, req.GetRefreshToken()); err != nil {
			return nil, db.ConnectError(err, "session")
		}
		return nil, connect.NewError(connect.CodeUnauthenticated, errRefreshRefused.Error())
	}
	return &patientv1.RefreshTokenResponse{Tokens: tokens}, nil
}

// revokeForReuse revokes the session of a reused refresh token and audits it.
func (s *Service) revokeForReuse(ctx context.Context, token string) error {
	return s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		_, sess, err := liveSession(ctx, c, token)
		if err != nil {
			return err
		}
		if sess.RevokedAt != nil {
			return nil
		}
		if err := c.Session.UpdateOneID(sess.ID).SetRevokedAt(s.now()).SetRevokeReason("refresh token reused").Exec(ctx); err != nil {
			return err
		}
		acc, err := loadAccount(ctx, c, sess.AccountKind, sess.AccountID)
		if err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Event{Actor: acc.p.actor(), Action: "TOKEN_REUSE_DETECTED", RecordType: "SESSION", RecordID: sess.ID, SubjectUUID: acc.p.subject()})
		return err
	})
}

// Logout revokes the session of a refresh token; unknown or ended sessions
// succeed too.
func (s *Service) Logout(ctx context.Context, req *patientv1.LogoutRequest) (*patientv1.LogoutResponse, error) {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		_, sess, err := liveSession(ctx, c, req.GetRefreshToken())
		if ent.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		if sess.RevokedAt != nil {
			return nil
		}
		if err := c.Session.UpdateOneID(sess.ID).SetRevokedAt(s.now()).SetRevokeReason("logged out").Exec(ctx); err != nil {
			return err
		}
		acc, err := loadAccount(ctx, c, sess.AccountKind, sess.AccountID)
		if err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Event{Actor: acc.p.actor(), Action: "LOGGED_OUT", RecordType: "SESSION", RecordID: sess.ID, SubjectUUID: acc.p.subject()})
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "session")
	}
	return &patientv1.LogoutResponse{}, nil
}

// ChangePassword checks the current password, sets the new one and revokes every
// other session (the calling one is found by its access token's jti).
func (s *Service) ChangePassword(ctx context.Context, req *patientv1.ChangePasswordRequest) (*patientv1.ChangePasswordResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	kind := kindStaff
	if caller.Role == patientRole {
		kind = kindPatient
	}
	acc, err := loadAccount(ctx, s.ent, kind, caller.Subject)
	if err != nil {
		return nil, errLoginRefused
	}
	if req.GetNewPassword() == req.GetCurrentPassword() {
		return nil, errorf(connect.CodeInvalidArgument, "new_password: must differ from the current password")
	}
	if err := password.Validate(req.GetNewPassword()); err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "new_password: %s", err.Error())
	}
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.ChangePasswordResponse, error) {
			c := entTx(tx)
			// Checked inside Do: a retry of a change that succeeded gets its answer,
			// although the current password no longer matches.
			if !password.Check(acc.passwordHash, req.GetCurrentPassword()) {
				return nil, errWrongPassword
			}
			if err := s.updateAccount(ctx, c, acc.p, accountUpdate{passwordHash: ptr(password.Hash(req.GetNewPassword()))}); err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "PASSWORD_CHANGED", RecordType: acc.p.recordType(), RecordID: acc.p.id, SubjectUUID: acc.p.subject()}); err != nil {
				return nil, err
			}
			keep := ""
			if sess, err := c.Session.Query().Where(sessionByJTI(acc.p, caller.TokenID)...).First(ctx); err == nil {
				keep = sess.ID
			}
			n, err := s.revokeSessions(ctx, tx, c, acc.p, keep, "password changed")
			if err != nil {
				return nil, err
			}
			return &patientv1.ChangePasswordResponse{ChangedAt: timestamppb.New(s.now()), SessionsRevoked: int32(n)}, nil
		})
	if errors.Is(err, errWrongPassword) {
		return nil, s.failLogin(ctx, "login:"+s.identifierKey("account", acc.p.id), acc)
	}
	if err != nil {
		return nil, db.ConnectError(err, "account")
	}
	return res, nil
}
