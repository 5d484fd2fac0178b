package patient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/predicate"
	"github.com/trialhub/trialhub/services/patient/ent/refreshtoken"
	"github.com/trialhub/trialhub/services/patient/ent/session"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// Account kinds in sessions.
const (
	kindPatient = "patient"
	kindStaff   = "staff"
)

// principal is a signed-in account as tokens describe it.
type principal struct {
	kind   string
	id     string
	role   authzv1.Role
	sites  []string
	trials []string
}

func (p principal) caller() auth.Caller {
	return auth.Caller{Subject: p.id, Role: p.role, Sites: p.sites, Trials: p.trials}
}

func (p principal) actor() audit.Actor {
	return audit.Actor{ID: p.id, Role: p.role.String(), Kind: audit.ActorUser}
}

func (p principal) recordType() string {
	if p.kind == kindPatient {
		return "PATIENT_ACCOUNT"
	}
	return "STAFF_ACCOUNT"
}

func (p principal) subject() string {
	if p.kind == kindPatient {
		return p.id
	}
	return ""
}

// hashToken is how a refresh token is stored: SHA-256 (it has 256 random bits,
// so an unkeyed hash cannot be reversed).
func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

func newRefreshToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// issue signs an access token for p and adds a refresh token to session sid
// (a new session when sid is ""), in c's transaction.
func (s *Service) issue(ctx context.Context, c *ent.Client, p principal, sid string) (*patientv1.TokenPair, string, error) {
	return s.issueWith(ctx, c, p, sid, newRefreshToken(), true)
}

// successorOf is the refresh token that replaces token: derived with the index
// key, so that a client retrying a refresh within refreshRetryGrace gets the same
// new refresh token again although only hashes are stored.
func (s *Service) successorOf(token string) string {
	sum, _ := hex.DecodeString(s.pii.index.Of("refresh-successor", token))
	return base64.RawURLEncoding.EncodeToString(sum)
}

// refreshRetryGrace is how long after a rotation the old refresh token counts as
// a network retry rather than theft.
const refreshRetryGrace = 10 * time.Second

// issueWith is issue with a given refresh token, stored when store is set.
func (s *Service) issueWith(ctx context.Context, c *ent.Client, p principal, sid, refresh string, store bool) (*patientv1.TokenPair, string, error) {
	now := s.now()
	access, exp, jti, err := s.keys.Sign(p.caller(), s.cfg.AccessTTL)
	if err != nil {
		return nil, "", err
	}
	var sessionExpires time.Time
	if sid == "" {
		sid = uuid.NewString()
		sessionExpires = now.Add(s.cfg.RefreshTTL)
		err = c.Session.Create().SetID(sid).SetAccountKind(p.kind).SetAccountID(p.id).SetAccessJti(jti).
			SetCreatedAt(now).SetExpiresAt(sessionExpires).Exec(ctx)
	} else {
		var sess *ent.Session
		if sess, err = c.Session.Get(ctx, sid); err == nil {
			sessionExpires = sess.ExpiresAt
			err = c.Session.UpdateOneID(sid).SetAccessJti(jti).Exec(ctx)
		}
	}
	if err != nil {
		return nil, "", err
	}
	if store {
		if err := c.RefreshToken.Create().SetID(hashToken(refresh)).SetSessionID(sid).SetCreatedAt(now).SetExpiresAt(sessionExpires).Exec(ctx); err != nil {
			return nil, "", err
		}
	}
	return &patientv1.TokenPair{
		AccessToken: access, TokenType: "Bearer",
		AccessTokenExpiresAt: timestamppb.New(exp), AccessTokenTtlSeconds: int32(exp.Sub(now).Seconds()),
		RefreshToken: refresh, RefreshTokenExpiresAt: timestamppb.New(sessionExpires),
	}, sid, nil
}

// revokeSessions ends every live session of an account except keep, and audits
// SESSIONS_REVOKED when there were any. It returns how many it revoked.
func (s *Service) revokeSessions(ctx context.Context, tx *db.Tx, c *ent.Client, p principal, keep, why string) (int, error) {
	q := c.Session.Update().Where(session.AccountKind(p.kind), session.AccountID(p.id), session.RevokedAtIsNil())
	if keep != "" {
		q = q.Where(session.IDNEQ(keep))
	}
	n, err := q.SetRevokedAt(s.now()).SetRevokeReason(why).Save(ctx)
	if err != nil || n == 0 {
		return n, err
	}
	_, err = s.audit.Append(ctx, tx, audit.Event{Action: "SESSIONS_REVOKED", RecordType: p.recordType(), RecordID: p.id,
		SubjectUUID: p.subject(), Field: "sessions", NewValue: itoa(n), Reason: why})
	return n, err
}

// errRefreshRefused is the one answer to every refused refresh token.
var errRefreshRefused = errors.New("the refresh token was not accepted; sign in again")

// liveSession finds a refresh token (by its hash) and its session.
func liveSession(ctx context.Context, c *ent.Client, token string) (*ent.RefreshToken, *ent.Session, error) {
	rt, err := c.RefreshToken.Query().Where(refreshtoken.ID(hashToken(token))).Only(ctx)
	if err != nil {
		return nil, nil, err
	}
	sess, err := c.Session.Get(ctx, rt.SessionID)
	if err != nil {
		return nil, nil, err
	}
	return rt, sess, nil
}

func refreshTokenUnused(id string) []predicate.RefreshToken {
	return []predicate.RefreshToken{refreshtoken.ID(id), refreshtoken.UsedAtIsNil()}
}

func sessionByJTI(p principal, jti string) []predicate.Session {
	return []predicate.Session{session.AccountKind(p.kind), session.AccountID(p.id), session.AccessJti(jti), session.RevokedAtIsNil()}
}

var patientRole = authzv1.Role_ROLE_PATIENT
