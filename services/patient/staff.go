package patient

import (
	"context"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent/staff"
	"github.com/trialhub/trialhub/services/patient/internal/password"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// CreateStaffAccount creates a staff sign-in; the contract's rules already
// checked the scopes per role. Audited as ACCOUNT_CREATED with role and scopes.
func (s *Service) CreateStaffAccount(ctx context.Context, req *patientv1.CreateStaffAccountRequest) (*patientv1.CreateStaffAccountResponse, error) {
	if err := password.Validate(req.GetPassword(), req.GetUsername()); err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "password: %s", err.Error())
	}
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*patientv1.CreateStaffAccountResponse, error) {
			c := entTx(tx)
			taken, err := c.Staff.Query().Where(staff.Username(req.GetUsername())).Exist(ctx)
			if err != nil {
				return nil, err
			}
			if taken {
				return nil, errorf(connect.CodeAlreadyExists, "username: already taken")
			}
			id, now := uuid.NewString(), s.now()
			sites, trials := nonNil(req.GetSiteIds()), nonNil(req.GetTrialIds())
			if err := c.Staff.Create().SetID(id).SetUsername(req.GetUsername()).SetDisplayName(req.GetDisplayName()).
				SetPasswordHash(password.Hash(req.GetPassword())).SetRole(req.GetRole().String()).SetSiteIds(sites).SetTrialIds(trials).
				SetStatus(statusActive).SetCreatedAt(now).SetUpdatedAt(now).Exec(ctx); err != nil {
				return nil, err
			}
			for _, e := range []audit.Event{
				{Action: "ACCOUNT_CREATED", RecordType: "STAFF_ACCOUNT", RecordID: id, Field: "role", NewValue: req.GetRole().String()},
				{Action: "SITE_SCOPES_CHANGED", RecordType: "STAFF_ACCOUNT", RecordID: id, Field: "site_ids", NewValue: joinIDs(sites)},
				{Action: "TRIAL_SCOPES_CHANGED", RecordType: "STAFF_ACCOUNT", RecordID: id, Field: "trial_ids", NewValue: joinIDs(trials)},
			} {
				if _, err := s.audit.Append(ctx, tx, e); err != nil {
					return nil, err
				}
			}
			return &patientv1.CreateStaffAccountResponse{StaffId: id, CreatedAt: timestamppb.New(now)}, nil
		})
	if err != nil {
		return nil, db.ConnectError(err, "staff account")
	}
	return res, nil
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
	}
	return out
}
