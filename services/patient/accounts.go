package patient

import (
	"context"
	"errors"
	"time"

	"github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/patient"
	"github.com/trialhub/trialhub/services/patient/ent/staff"
)

// Statuses as stored: the contract's enum names.
var (
	statusActive    = patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE.String()
	statusSuspended = patientv1.AccountStatus_ACCOUNT_STATUS_SUSPENDED.String()
	statusClosed    = patientv1.AccountStatus_ACCOUNT_STATUS_CLOSED.String()
	statusPending   = patientv1.AccountStatus_ACCOUNT_STATUS_PENDING_ACTIVATION.String()
)

func statusOf(s string) patientv1.AccountStatus {
	return patientv1.AccountStatus(patientv1.AccountStatus_value[s])
}

// account is a patient or staff account as sign-in sees it.
type account struct {
	p                principal
	status           string
	passwordHash     string
	activationHash   string
	activationExpiry *time.Time
	attempts         int
}

func patientAccount(r *ent.Patient) *account {
	return &account{
		p:      principal{kind: kindPatient, id: r.ID, role: authzv1.Role_ROLE_PATIENT},
		status: r.Status, passwordHash: r.PasswordHash, activationHash: r.ActivationHash,
		activationExpiry: r.ActivationExpiresAt, attempts: r.ActivationAttempts,
	}
}

func staffAccount(r *ent.Staff) *account {
	role := authzv1.Role(authzv1.Role_value[r.Role])
	return &account{
		p:      principal{kind: kindStaff, id: r.ID, role: role, sites: r.SiteIds, trials: r.TrialIds},
		status: r.Status, passwordHash: r.PasswordHash, activationHash: r.ActivationHash,
		activationExpiry: r.ActivationExpiresAt, attempts: r.ActivationAttempts,
	}
}

// errNoAccount is what a look-up that found nothing returns; callers answer it
// exactly like a wrong secret.
var errNoAccount = errors.New("no such account")

// loadAccount reads the account a session or token names.
func loadAccount(ctx context.Context, c *ent.Client, kind, id string) (*account, error) {
	switch kind {
	case kindPatient:
		r, err := c.Patient.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil, errNoAccount
		} else if err != nil {
			return nil, err
		}
		return patientAccount(r), nil
	case kindStaff:
		r, err := c.Staff.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil, errNoAccount
		} else if err != nil {
			return nil, err
		}
		return staffAccount(r), nil
	}
	return nil, errNoAccount
}

// findByMobile finds a patient account by its mobile's blind index.
func (s *Service) findByMobile(ctx context.Context, c *ent.Client, e164 string) (*account, error) {
	r, err := c.Patient.Query().Where(patient.MobileIndex(s.pii.mobileIndex(e164))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errNoAccount
	} else if err != nil {
		return nil, err
	}
	return patientAccount(r), nil
}

func findByUsername(ctx context.Context, c *ent.Client, username string) (*account, error) {
	r, err := c.Staff.Query().Where(staff.Username(username)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errNoAccount
	} else if err != nil {
		return nil, err
	}
	return staffAccount(r), nil
}

// setAccount updates an account's credentials and status fields.
type accountUpdate struct {
	status         *string
	statusBefore   *string
	passwordHash   *string
	activationHash *string
	activationExp  *time.Time
	clearExpiry    bool
	attempts       *int
}

// accountMutation is what the patient and staff mutations share.
type accountMutation interface {
	SetStatus(string)
	SetStatusBefore(string)
	SetPasswordHash(string)
	SetActivationHash(string)
	SetActivationExpiresAt(time.Time)
	ClearActivationExpiresAt()
	SetActivationAttempts(int)
}

func (u accountUpdate) apply(m accountMutation) {
	if u.status != nil {
		m.SetStatus(*u.status)
	}
	if u.statusBefore != nil {
		m.SetStatusBefore(*u.statusBefore)
	}
	if u.passwordHash != nil {
		m.SetPasswordHash(*u.passwordHash)
	}
	if u.activationHash != nil {
		m.SetActivationHash(*u.activationHash)
	}
	if u.activationExp != nil {
		m.SetActivationExpiresAt(*u.activationExp)
	}
	if u.clearExpiry {
		m.ClearActivationExpiresAt()
	}
	if u.attempts != nil {
		m.SetActivationAttempts(*u.attempts)
	}
}

func (s *Service) updateAccount(ctx context.Context, c *ent.Client, p principal, u accountUpdate) error {
	now := s.now()
	if p.kind == kindPatient {
		q := c.Patient.UpdateOneID(p.id)
		u.apply(q.Mutation())
		if u.status != nil {
			q.SetStatusUpdatedAt(now)
		}
		return q.Exec(ctx)
	}
	q := c.Staff.UpdateOneID(p.id).SetUpdatedAt(now)
	u.apply(q.Mutation())
	return q.Exec(ctx)
}

func ptr[T any](v T) *T { return &v }
