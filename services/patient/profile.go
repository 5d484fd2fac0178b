package patient

import (
	"context"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// GetProfile returns the calling patient's own profile.
func (s *Service) GetProfile(ctx context.Context, _ *patientv1.GetProfileRequest) (*patientv1.GetProfileResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	p, err := s.ent.Patient.Get(ctx, caller.Subject)
	if ent.IsNotFound(err) {
		return nil, errorf(connect.CodeNotFound, "no profile for this subject")
	} else if err != nil {
		return nil, db.ConnectError(err, "profile")
	}
	res := &patientv1.GetProfileResponse{SubjectUuid: p.ID, Profile: profileOf(p)}
	if p.ProfileUpdatedAt != nil {
		res.UpdatedAt = timestamppb.New(*p.ProfileUpdatedAt)
	}
	return res, nil
}

func profileOf(p *ent.Patient) *patientv1.Profile {
	return &patientv1.Profile{Nickname: p.Nickname, AvatarUrl: p.AvatarURL, Language: p.Language, TimeZone: p.TimeZone}
}

// UpdateProfile applies the masked fields and audits each changed one.
func (s *Service) UpdateProfile(ctx context.Context, req *patientv1.UpdateProfileRequest) (*patientv1.UpdateProfileResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	var res *patientv1.UpdateProfileResponse
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		p, err := c.Patient.Get(ctx, caller.Subject)
		if ent.IsNotFound(err) {
			return errorf(connect.CodeNotFound, "no profile for this subject")
		} else if err != nil {
			return err
		}
		old, next := profileOf(p), req.GetProfile()
		q := c.Patient.UpdateOneID(p.ID)
		changed := false
		for _, path := range req.GetUpdateMask().GetPaths() {
			var before, after string
			switch path {
			case "nickname":
				before, after = old.Nickname, next.GetNickname()
				q.SetNickname(after)
			case "avatar_url":
				before, after = old.AvatarUrl, next.GetAvatarUrl()
				q.SetAvatarURL(after)
			case "language":
				before, after = old.Language, next.GetLanguage()
				q.SetLanguage(after)
			case "time_zone":
				before, after = old.TimeZone, next.GetTimeZone()
				q.SetTimeZone(after)
			default:
				return errorf(connect.CodeInvalidArgument, "update_mask: %s is not an editable field", path)
			}
			if before == after {
				continue
			}
			changed = true
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "PROFILE_UPDATED", RecordType: "PATIENT_PROFILE", RecordID: p.ID,
				SubjectUUID: p.ID, Field: path, OldValue: before, NewValue: after}); err != nil {
				return err
			}
		}
		if changed {
			q.SetProfileUpdatedAt(s.now())
		}
		if p, err = q.Save(ctx); err != nil {
			return err
		}
		res = &patientv1.UpdateProfileResponse{SubjectUuid: p.ID, Profile: profileOf(p)}
		if p.ProfileUpdatedAt != nil {
			res.UpdatedAt = timestamppb.New(*p.ProfileUpdatedAt)
		}
		return nil
	})
	if err != nil {
		return nil, db.ConnectError(err, "profile")
	}
	return res, nil
}
