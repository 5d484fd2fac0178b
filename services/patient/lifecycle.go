package patient

import (
	"context"
	"encoding/base64"
	"slices"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/patient/ent/staff"
	"github.com/trialhub/trialhub/services/patient/internal/vault"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// named is the account a lifecycle request names: a patient by subject_uuid or
// a staff member by staff id.
func named(subject, staffID string) principal {
	if subject != "" {
		return principal{kind: kindPatient, id: subject}
	}
	return principal{kind: kindStaff, id: staffID}
}

// lockAccount reads the named account inside the transaction, with NOT_FOUND
// for an unknown one and FAILED_PRECONDITION for a closed one.
func lockAccount(ctx context.Context, c *ent.Client, p principal) (*account, error) {
	acc, err := loadAccount(ctx, c, p.kind, p.id)
	if err == errNoAccount {
		return nil, errorf(connect.CodeNotFound, "no such account")
	} else if err != nil {
		return nil, err
	}
	if acc.status == statusClosed {
		return nil, errorf(connect.CodeFailedPrecondition, "the account is closed")
	}
	return acc, nil
}

func isSelf(ctx context.Context, p principal) bool {
	caller, _ := auth.CallerFrom(ctx)
	return p.kind == kindStaff && caller.Subject == p.id
}

// ResetAccess voids the password and every session and returns a new activation
// code. Like InviteParticipant it never stores the code in idempotency_keys: it
// does not use idempotency.Do's stored answer at all, so a retry with the same
// key is a new reset (a new code that voids the previous one), as the contract
// says; the events record each.
func (s *Service) ResetAccess(ctx context.Context, req *patientv1.ResetAccessRequest) (*patientv1.ResetAccessResponse, error) {
	p := named(req.GetSubjectUuid(), req.GetStaffId())
	code := vault.ActivationCode()
	expires := s.now().Add(s.cfg.ActivationTTL)
	var revoked int
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		acc, err := lockAccount(ctx, c, p)
		if err != nil {
			return err
		}
		if err := s.updateAccount(ctx, c, acc.p, accountUpdate{status: ptr(statusPending), passwordHash: ptr(""),
			activationHash: ptr(s.pii.codeHash("activation", code)), activationExp: &expires, attempts: ptr(0)}); err != nil {
			return err
		}
		if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "ACCESS_RESET", RecordType: acc.p.recordType(), RecordID: acc.p.id,
			SubjectUUID: acc.p.subject(), Field: "status", OldValue: acc.status, NewValue: statusPending, Reason: req.GetReason()}); err != nil {
			return err
		}
		revoked, err = s.revokeSessions(ctx, tx, c, acc.p, "", "access reset")
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "account")
	}
	return &patientv1.ResetAccessResponse{ActivationCode: code, ActivationCodeExpiresAt: timestamppb.New(expires), SessionsRevoked: int32(revoked)}, nil
}

// SuspendAccount blocks an account and revokes its sessions; suspending a
// suspended account changes nothing.
func (s *Service) SuspendAccount(ctx context.Context, req *patientv1.SuspendAccountRequest) (*patientv1.SuspendAccountResponse, error) {
	p := named(req.GetSubjectUuid(), req.GetStaffId())
	if isSelf(ctx, p) {
		return nil, errorf(connect.CodeFailedPrecondition, "an administrator cannot suspend their own account")
	}
	res := &patientv1.SuspendAccountResponse{}
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		acc, err := lockAccount(ctx, c, p)
		if err != nil {
			return err
		}
		if acc.status != statusSuspended {
			if err := s.updateAccount(ctx, c, acc.p, accountUpdate{status: ptr(statusSuspended), statusBefore: ptr(acc.status)}); err != nil {
				return err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "ACCOUNT_STATUS_CHANGED", RecordType: acc.p.recordType(), RecordID: acc.p.id,
				SubjectUUID: acc.p.subject(), Field: "status", OldValue: acc.status, NewValue: statusSuspended, Reason: req.GetReason()}); err != nil {
				return err
			}
			n, err := s.revokeSessions(ctx, tx, c, acc.p, "", "account suspended")
			if err != nil {
				return err
			}
			res.SessionsRevoked = int32(n)
		}
		res.Status, res.StatusUpdatedAt, err = s.statusNow(ctx, c, acc.p)
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "account")
	}
	return res, nil
}

// ReactivateAccount returns a suspended account to the status it had before.
func (s *Service) ReactivateAccount(ctx context.Context, req *patientv1.ReactivateAccountRequest) (*patientv1.ReactivateAccountResponse, error) {
	p := named(req.GetSubjectUuid(), req.GetStaffId())
	res := &patientv1.ReactivateAccountResponse{}
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		acc, err := lockAccount(ctx, c, p)
		if err != nil {
			return err
		}
		if acc.status == statusSuspended {
			before, err := s.statusBefore(ctx, c, acc.p)
			if err != nil {
				return err
			}
			if err := s.updateAccount(ctx, c, acc.p, accountUpdate{status: &before, statusBefore: ptr("")}); err != nil {
				return err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "ACCOUNT_STATUS_CHANGED", RecordType: acc.p.recordType(), RecordID: acc.p.id,
				SubjectUUID: acc.p.subject(), Field: "status", OldValue: statusSuspended, NewValue: before, Reason: req.GetReason()}); err != nil {
				return err
			}
		}
		res.Status, res.StatusUpdatedAt, err = s.statusNow(ctx, c, acc.p)
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "account")
	}
	return res, nil
}

func (s *Service) statusBefore(ctx context.Context, c *ent.Client, p principal) (string, error) {
	before := ""
	if p.kind == kindPatient {
		r, err := c.Patient.Get(ctx, p.id)
		if err != nil {
			return "", err
		}
		before = r.StatusBefore
	} else {
		r, err := c.Staff.Get(ctx, p.id)
		if err != nil {
			return "", err
		}
		before = r.StatusBefore
	}
	if before == "" {
		before = statusActive
	}
	return before, nil
}

func (s *Service) statusNow(ctx context.Context, c *ent.Client, p principal) (patientv1.AccountStatus, *timestamppb.Timestamp, error) {
	if p.kind == kindPatient {
		r, err := c.Patient.Get(ctx, p.id)
		if err != nil {
			return 0, nil, err
		}
		return statusOf(r.Status), timestamppb.New(r.StatusUpdatedAt), nil
	}
	r, err := c.Staff.Get(ctx, p.id)
	if err != nil {
		return 0, nil, err
	}
	return statusOf(r.Status), timestamppb.New(r.UpdatedAt), nil
}

// UpdateStaffAccount sets role and scopes, one event per changed field, and
// revokes the account's sessions when anything changed.
func (s *Service) UpdateStaffAccount(ctx context.Context, req *patientv1.UpdateStaffAccountRequest) (*patientv1.UpdateStaffAccountResponse, error) {
	p := principal{kind: kindStaff, id: req.GetStaffId()}
	if isSelf(ctx, p) {
		return nil, errorf(connect.CodeFailedPrecondition, "an administrator cannot change their own account")
	}
	res := &patientv1.UpdateStaffAccountResponse{}
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		r, err := c.Staff.Get(ctx, p.id)
		if ent.IsNotFound(err) {
			return errorf(connect.CodeNotFound, "staff_id: no such staff account")
		} else if err != nil {
			return err
		}
		sites, trials := sorted(req.GetSiteIds()), sorted(req.GetTrialIds())
		changes := []audit.Event{}
		if r.Role != req.GetRole().String() {
			changes = append(changes, audit.Event{Action: "ROLE_CHANGED", Field: "role", OldValue: r.Role, NewValue: req.GetRole().String()})
		}
		if !slices.Equal(sorted(r.SiteIds), sites) {
			changes = append(changes, audit.Event{Action: "SITE_SCOPES_CHANGED", Field: "site_ids", OldValue: joinIDs(sorted(r.SiteIds)), NewValue: joinIDs(sites)})
		}
		if !slices.Equal(sorted(r.TrialIds), trials) {
			changes = append(changes, audit.Event{Action: "TRIAL_SCOPES_CHANGED", Field: "trial_ids", OldValue: joinIDs(sorted(r.TrialIds)), NewValue: joinIDs(trials)})
		}
		if len(changes) > 0 {
			if r, err = c.Staff.UpdateOneID(p.id).SetRole(req.GetRole().String()).SetSiteIds(sites).SetTrialIds(trials).SetUpdatedAt(s.now()).Save(ctx); err != nil {
				return err
			}
			for _, ev := range changes {
				ev.RecordType, ev.RecordID, ev.Reason = "STAFF_ACCOUNT", p.id, req.GetReason()
				if _, err := s.audit.Append(ctx, tx, ev); err != nil {
					return err
				}
			}
			n, err := s.revokeSessions(ctx, tx, c, p, "", "role or scopes changed")
			if err != nil {
				return err
			}
			res.SessionsRevoked = int32(n)
		}
		res.Account = staffOf(r)
		return nil
	})
	if err != nil {
		return nil, db.ConnectError(err, "staff account")
	}
	return res, nil
}

func sorted(ids []string) []string {
	out := slices.Clone(nonNil(ids))
	slices.Sort(out)
	return out
}

func staffOf(r *ent.Staff) *patientv1.StaffAccount {
	return &patientv1.StaffAccount{StaffId: r.ID, Username: r.Username, DisplayName: r.DisplayName, Role: staffAccount(r).p.role,
		SiteIds: r.SiteIds, TrialIds: r.TrialIds, Status: statusOf(r.Status), CreatedAt: timestamppb.New(r.CreatedAt), UpdatedAt: timestamppb.New(r.UpdatedAt)}
}

// ListStaffAccounts pages staff accounts by username; the page token is the last
// username of the page (base64), only meaningful with the same filters.
func (s *Service) ListStaffAccounts(ctx context.Context, req *patientv1.ListStaffAccountsRequest) (*patientv1.ListStaffAccountsResponse, error) {
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	q := s.ent.Staff.Query().Order(ent.Asc(staff.FieldUsername))
	if roles := req.GetRoles(); len(roles) > 0 {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = r.String()
		}
		q = q.Where(staff.RoleIn(names...))
	}
	if sts := req.GetStatuses(); len(sts) > 0 {
		names := make([]string, len(sts))
		for i, st := range sts {
			names[i] = st.String()
		}
		q = q.Where(staff.StatusIn(names...))
	}
	if tok := req.GetPageToken(); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, errorf(connect.CodeInvalidArgument, "page_token: not a token of this listing")
		}
		q = q.Where(staff.UsernameGT(string(after)))
	}
	// Scope filters are applied in Go: scopes are JSON lists, and the staff list
	// of one platform is small.
	rows, err := q.All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "staff accounts")
	}
	res := &patientv1.ListStaffAccountsResponse{}
	for _, r := range rows {
		if (req.GetSiteId() != "" && !slices.Contains(r.SiteIds, req.GetSiteId())) || (req.GetTrialId() != "" && !slices.Contains(r.TrialIds, req.GetTrialId())) {
			continue
		}
		if len(res.Accounts) == size {
			res.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(res.Accounts[size-1].GetUsername()))
			break
		}
		res.Accounts = append(res.Accounts, staffOf(r))
	}
	return res, nil
}

// ListSiteStaff lists the active investigators of a site in a trial, for the
// notification service only.
func (s *Service) ListSiteStaff(ctx context.Context, req *patientv1.ListSiteStaffRequest) (*patientv1.ListSiteStaffResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	if caller.Subject != "notification" {
		return nil, errorf(connect.CodePermissionDenied, "only the notification service lists site staff")
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	q := s.ent.Staff.Query().Where(staff.Status(statusActive)).Order(ent.Asc(staff.FieldID))
	if tok := req.GetPageToken(); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, errorf(connect.CodeInvalidArgument, "page_token: not a token of this listing")
		}
		q = q.Where(staff.IDGT(string(after)))
	}
	rows, err := q.All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "staff")
	}
	res := &patientv1.ListSiteStaffResponse{}
	for _, r := range rows {
		if !slices.Contains(r.SiteIds, req.GetSiteId()) || !slices.Contains(r.TrialIds, req.GetTrialId()) {
			continue
		}
		if len(res.Staff) == size {
			res.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(res.Staff[size-1].GetStaffId()))
			break
		}
		res.Staff = append(res.Staff, &patientv1.SiteStaffMember{StaffId: r.ID, Role: staffAccount(r).p.role})
	}
	return res, nil
}
