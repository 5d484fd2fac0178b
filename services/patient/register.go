package patient

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/patient"
	"github.com/trialhub/trialhub/services/patient/internal/password"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// SMS texts. Neither names the service's trial or the person.
const (
	smsCodeText  = "TrialHub: your verification code is %s. It expires in %d minutes."
	smsKnownText = "TrialHub: this number already has an account. Sign in with it, or ask your site to reset your access."
)

// Register starts a self-registration. Whether the mobile is known changes only
// the SMS (a code, or a notice) and an audit field only administrators see; the
// answer, the work done (an argon2id hash either way) and the rows written are
// the same. The idempotent answer holds the registration id and expiry only;
// the code exists in clear only sealed in the SMS job until it is sent.
func (s *Service) Register(ctx context.Context, req *patientv1.RegisterRequest) (*patientv1.RegisterResponse, error) {
	mobile, err := vault.NormaliseMobile(req.GetMobile())
	if err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "mobile: not an E.164 number")
	}
	if err := password.Validate(req.GetPassword(), mobile); err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "password: %s", err.Error())
	}
	if err := s.admit(ctx, "register", s.cfg.PerMobile, s.pii.mobileIndex(mobile)); err != nil {
		return nil, err
	}
	hash := password.Hash(req.GetPassword())
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.RegisterResponse, error) {
			c := entTx(tx)
			mi := s.pii.mobileIndex(mobile)
			known, err := c.Patient.Query().Where(patient.MobileIndex(mi)).Exist(ctx)
			if err != nil {
				return nil, err
			}
			id, now := uuid.NewString(), s.now()
			expires := now.Add(s.cfg.CodeTTL)
			code := vault.SMSCode()
			text, outcome := fmt.Sprintf(smsCodeText, code, int(s.cfg.CodeTTL.Minutes())), "code_sent"
			q := c.Registration.Create().SetID(id).SetMobileIndex(mi).
				SetNationalIDIndex(s.pii.nationalIDIndex(req.GetNationalIdCountry(), req.GetNationalId())).
				SetFullNameEnc(s.pii.seal("registrations", "full_name", id, req.GetFullName())).
				SetNationalIDEnc(s.pii.seal("registrations", "national_id", id, req.GetNationalId())).
				SetMobileEnc(s.pii.seal("registrations", "mobile", id, mobile)).
				SetNationalIDCountry(req.GetNationalIdCountry()).SetKnown(known).SetExpiresAt(expires).SetCreatedAt(now)
			if known {
				text, outcome = smsKnownText, "already_registered"
			} else {
				q.SetPasswordHash(hash).SetCodeHash(s.pii.codeHash("sms", code))
			}
			if err := q.Exec(ctx); err != nil {
				return nil, err
			}
			if _, err := s.jobs.InsertTx(ctx, tx, SendSMS{RegistrationID: id, SealedText: s.pii.seal("sms", "text", id, text)}, nil); err != nil {
				return nil, fmt.Errorf("enqueue the SMS: %w", err)
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "REGISTRATION_REQUESTED", RecordType: "REGISTRATION", RecordID: id,
				Field: "outcome", NewValue: outcome}); err != nil {
				return nil, err
			}
			return &patientv1.RegisterResponse{Outcome: &patientv1.RegisterResponse_CodeSent{CodeSent: &patientv1.RegistrationPending{
				RegistrationId: id, CodeExpiresAt: timestamppb.New(expires), CodeTtlSeconds: int32(s.cfg.CodeTTL.Seconds())}}}, nil
		})
	if err != nil {
		return nil, db.ConnectError(err, "registration")
	}
	if p := res.GetCodeSent(); p != nil {
		p.CodeTtlSeconds = max(0, int32(p.GetCodeExpiresAt().AsTime().Sub(s.now()).Seconds()))
	}
	return res, nil
}

// ConfirmRegistration creates the patient of a registration whose code matches.
// Every refusal is the same UNAUTHENTICATED; five wrong codes void it.
func (s *Service) ConfirmRegistration(ctx context.Context, req *patientv1.ConfirmRegistrationRequest) (*patientv1.ConfirmRegistrationResponse, error) {
	if err := s.admit(ctx, "confirm", s.cfg.LockoutAfter, req.GetRegistrationId()); err != nil {
		return nil, err
	}
	var rejected *ent.Registration
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.ConfirmRegistrationResponse, error) {
			c := entTx(tx)
			reg, err := c.Registration.Get(ctx, req.GetRegistrationId())
			if ent.IsNotFound(err) {
				return nil, errCodeRefused
			} else if err != nil {
				return nil, err
			}
			now := s.now()
			ok := !reg.Known && reg.ConfirmedAt == nil && reg.Attempts < maxCodeAttempts && reg.ExpiresAt.After(now) &&
				subtle.ConstantTimeCompare([]byte(reg.CodeHash), []byte(s.pii.codeHash("sms", req.GetCode()))) == 1
			if !ok {
				rejected = reg
				return nil, errCodeRefused
			}
			clash, err := c.Patient.Query().Where(patient.Or(patient.MobileIndex(reg.MobileIndex), patient.NationalIDIndex(reg.NationalIDIndex))).Exist(ctx)
			if err != nil {
				return nil, err
			}
			if clash { // registered meanwhile, or the national ID has an account
				rejected = reg
				return nil, errCodeRefused
			}
			id := uuid.NewString()
			q := c.Patient.Create().SetID(id).SetStatus(statusActive).SetMobileIndex(reg.MobileIndex).SetNationalIDIndex(reg.NationalIDIndex).
				SetNationalIDCountry(reg.NationalIDCountry).SetPasswordHash(reg.PasswordHash).SetCreatedAt(now).SetStatusUpdatedAt(now)
			for _, f := range []struct {
				col    string
				sealed []byte
				set    func([]byte) *ent.PatientCreate
			}{{"full_name", reg.FullNameEnc, q.SetFullNameEnc}, {"national_id", reg.NationalIDEnc, q.SetNationalIDEnc}, {"mobile", reg.MobileEnc, q.SetMobileEnc}} {
				v, err := s.pii.open("registrations", f.col, reg.ID, f.sealed)
				if err != nil {
					return nil, err
				}
				f.set(s.pii.seal("patients", f.col, id, v))
			}
			if err := q.Exec(ctx); err != nil {
				return nil, err
			}
			// The registration keeps no personal data once the vault has it.
			if err := c.Registration.UpdateOneID(reg.ID).SetConfirmedAt(now).SetFullNameEnc([]byte{}).SetNationalIDEnc([]byte{}).
				SetMobileEnc([]byte{}).SetPasswordHash("").SetCodeHash("").Exec(ctx); err != nil {
				return nil, err
			}
			p := principal{kind: kindPatient, id: id, role: patientRole}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Actor: p.actor(), Action: "ACCOUNT_CREATED", RecordType: "PATIENT_ACCOUNT",
				RecordID: id, SubjectUUID: id, Field: "registration_id", NewValue: reg.ID}); err != nil {
				return nil, err
			}
			return &patientv1.ConfirmRegistrationResponse{Outcome: &patientv1.ConfirmRegistrationResponse_Session{Session: sessionOf(p, nil)}}, nil
		})
	if rejected != nil {
		s.rejectRegistrationCode(ctx, rejected)
		return nil, errCodeRefused
	}
	if errors.Is(err, errCodeRefused) {
		return nil, errCodeRefused
	}
	if err != nil {
		return nil, db.ConnectError(err, "registration")
	}
	if err := s.signIn(ctx, res.GetSession()); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *Service) rejectRegistrationCode(ctx context.Context, reg *ent.Registration) {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		n := reg.Attempts + 1
		if err := c.Registration.UpdateOneID(reg.ID).SetAttempts(n).Exec(ctx); err != nil {
			return err
		}
		_, err := s.audit.Append(ctx, tx, audit.Event{Action: "CODE_REJECTED", RecordType: "REGISTRATION", RecordID: reg.ID,
			Field: "attempts", NewValue: itoa(n)})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record a rejected verification code", "error", err.Error())
	}
}
