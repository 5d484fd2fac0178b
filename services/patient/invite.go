package patient

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/patient"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// InviteParticipant creates a participant waiting for activation: the identity
// sealed in the vault, a random subject_uuid and a one-time activation code.
//
// Codes never rest in clear: idempotency.Do stores the answer without the code
// (subject and expiry only), and every call, the first and each retry with the
// same key, then sets a fresh code on the still pending account and returns it;
// the earlier code stops working, as the contract says. A retry after the
// participant activated fails with FAILED_PRECONDITION.
func (s *Service) InviteParticipant(ctx context.Context, req *patientv1.InviteParticipantRequest) (*patientv1.InviteParticipantResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	if !caller.CanAccessSite(req.GetSiteId()) {
		return nil, errorf(connect.CodePermissionDenied, "site_id: not one of your sites")
	}
	if !caller.CanAccessTrial(req.GetTrialId()) {
		return nil, errorf(connect.CodePermissionDenied, "trial_id: not one of your trials")
	}
	mobile, err := vault.NormaliseMobile(req.GetMobile())
	if err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "mobile: not an E.164 number")
	}
	refused := errors.New("refused")
	var existing string
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.InviteParticipantResponse, error) {
			c := entTx(tx)
			mi := s.pii.mobileIndex(mobile)
			ni := s.pii.nationalIDIndex(req.GetNationalIdCountry(), req.GetNationalId())
			other, err := c.Patient.Query().Where(patient.Or(patient.MobileIndex(mi), patient.NationalIDIndex(ni))).First(ctx)
			if err == nil {
				existing = other.ID
				return nil, refused
			} else if !ent.IsNotFound(err) {
				return nil, err
			}
			id := uuid.NewString() // random UUIDv4, never derived from identity
			now := s.now()
			err = c.Patient.Create().SetID(id).SetStatus(statusPending).
				SetMobileIndex(mi).SetNationalIDIndex(ni).
				SetFullNameEnc(s.pii.seal("patients", "full_name", id, req.GetFullName())).
				SetNationalIDEnc(s.pii.seal("patients", "national_id", id, req.GetNationalId())).
				SetMobileEnc(s.pii.seal("patients", "mobile", id, mobile)).
				SetNationalIDCountry(req.GetNationalIdCountry()).
				SetInvitedSiteID(req.GetSiteId()).SetInvitedTrialID(req.GetTrialId()).
				SetCreatedAt(now).SetStatusUpdatedAt(now).Exec(ctx)
			if err != nil {
				return nil, err
			}
			for _, f := range []string{"full_name", "national_id", "mobile"} {
				if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "PARTICIPANT_INVITED", RecordType: "PATIENT_IDENTITY",
					RecordID: id, SubjectUUID: id, Field: f, NewValue: audit.Redacted, SiteID: req.GetSiteId(), TrialID: req.GetTrialId()}); err != nil {
					return nil, err
				}
			}
			return &patientv1.InviteParticipantResponse{SubjectUuid: id}, nil
		})
	if errors.Is(err, refused) {
		// Audited in a transaction of its own: the refusal must stay recorded.
		aerr := s.tx(ctx, func(ctx context.Context, tx *db.Tx, _ *ent.Client) error {
			_, err := s.audit.Append(ctx, tx, audit.Event{Action: "INVITATION_REFUSED", RecordType: "PATIENT_IDENTITY",
				RecordID: existing, SubjectUUID: existing, SiteID: req.GetSiteId(), TrialID: req.GetTrialId()})
			return err
		})
		if aerr != nil {
			return nil, db.ConnectError(aerr, "invitation")
		}
		return nil, errorf(connect.CodeAlreadyExists, "a participant with this mobile or national ID already has an account")
	}
	if err != nil {
		return nil, db.ConnectError(err, "invitation")
	}
	code, expires, err := s.newActivationCode(ctx, principal{kind: kindPatient, id: res.GetSubjectUuid()}, "")
	if err != nil {
		return nil, err
	}
	return &patientv1.InviteParticipantResponse{SubjectUuid: res.GetSubjectUuid(), ActivationCode: code,
		ActivationCodeExpiresAt: timestamppb.New(expires)}, nil
}

// newActivationCode sets a fresh activation code (stored keyed-hashed) on a
// pending account, voiding the previous one, and returns it once. reason is
// audited when it is a reset.
func (s *Service) newActivationCode(ctx context.Context, p principal, reason string) (string, time.Time, error) {
	code := vault.ActivationCode()
	expires := s.now().Add(s.cfg.ActivationTTL)
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		acc, err := loadAccount(ctx, c, p.kind, p.id)
		if err != nil {
			return err
		}
		if acc.status != statusPending {
			return errorf(connect.CodeFailedPrecondition, "the account is no longer waiting for activation")
		}
		return s.updateAccount(ctx, c, p, accountUpdate{activationHash: ptr(s.pii.codeHash("activation", code)),
			activationExp: &expires, attempts: ptr(0)})
	})
	if err != nil {
		return "", time.Time{}, db.ConnectError(err, "account")
	}
	return code, expires, nil
}
