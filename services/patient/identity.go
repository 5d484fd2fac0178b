package patient

import (
	"context"
	"slices"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/patient/ent"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// GetPatientIdentity releases a subject's identity to an administrator, or to an
// investigator with the subject enrolled at one of their sites in one of their
// trials, and audits PII_READ in the same transaction as the read.
//
// How this service knows where a subject takes part: it asks the trial service
// (ListEnrollments for the subject, with this service's SERVICE token), as the
// contract says. The inviting site, which this service stores, is not enough:
// self-registered subjects have none and subjects transfer between sites, and
// token claims cannot know enrollments. When the trial service cannot answer,
// the call fails closed with UNAVAILABLE and reveals nothing.
func (s *Service) GetPatientIdentity(ctx context.Context, req *patientv1.GetPatientIdentityRequest) (*patientv1.GetPatientIdentityResponse, error) {
	if info, ok := connect.CallInfoForServerContext(ctx); ok {
		info.ResponseHeader().Set("Cache-Control", "no-store")
	}
	caller, _ := auth.CallerFrom(ctx)
	subject := req.GetSubjectUuid()
	switch caller.Role {
	case authzv1.Role_ROLE_ADMIN:
		// An administrator may read any subject; a stated trial or site context
		// must still be true, or the audit record would be wrong.
		if req.GetTrialId() != "" || req.GetSiteId() != "" {
			if err := s.enrolledIn(ctx, req, func(*trialv1.Enrollment) bool { return true }); err != nil {
				if connect.CodeOf(err) == connect.CodePermissionDenied {
					return nil, errorf(connect.CodeFailedPrecondition, "the subject is not enrolled in the stated trial or site")
				}
				return nil, err
			}
		}
	case authzv1.Role_ROLE_INVESTIGATOR:
		if err := s.enrolledInScope(ctx, caller, req); err != nil {
			if connect.CodeOf(err) == connect.CodePermissionDenied {
				s.denyPII(ctx, req, "not enrolled at the caller's sites and trials")
			}
			return nil, err
		}
	default:
		s.denyPII(ctx, req, "role may not read identities")
		return nil, errorf(connect.CodePermissionDenied, "your role may not read identities")
	}
	var res *patientv1.GetPatientIdentityResponse
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, c *ent.Client) error {
		p, err := c.Patient.Get(ctx, subject)
		if ent.IsNotFound(err) {
			if caller.Role == authzv1.Role_ROLE_ADMIN {
				return errorf(connect.CodeNotFound, "subject_uuid: no such subject")
			}
			return errorf(connect.CodePermissionDenied, "subject_uuid: not enrolled at your sites")
		} else if err != nil {
			return err
		}
		res = &patientv1.GetPatientIdentityResponse{SubjectUuid: p.ID, NationalIdCountry: p.NationalIDCountry, Status: statusOf(p.Status)}
		if res.FullName, err = s.pii.open("patients", "full_name", p.ID, p.FullNameEnc); err != nil {
			return err
		}
		if res.NationalId, err = s.pii.open("patients", "national_id", p.ID, p.NationalIDEnc); err != nil {
			return err
		}
		if res.Mobile, err = s.pii.open("patients", "mobile", p.ID, p.MobileEnc); err != nil {
			return err
		}
		entry, err := s.audit.Append(ctx, tx, audit.Event{Action: "PII_READ", RecordType: "PATIENT_IDENTITY", RecordID: p.ID, SubjectUUID: p.ID,
			Reason: req.GetReason(), TrialID: req.GetTrialId(), SiteID: req.GetSiteId()})
		if err != nil {
			return err
		}
		res.AuditEventId = entry.ID
		return nil
	})
	if err != nil {
		return nil, db.ConnectError(err, "identity")
	}
	return res, nil
}

// enrolledInScope asks the trial service whether the subject is enrolled at one
// of the investigator's sites in one of their trials (and in the request's trial
// and site when it names them).
func (s *Service) enrolledInScope(ctx context.Context, caller auth.Caller, req *patientv1.GetPatientIdentityRequest) error {
	if (req.GetTrialId() != "" && !caller.CanAccessTrial(req.GetTrialId())) || (req.GetSiteId() != "" && !caller.CanAccessSite(req.GetSiteId())) {
		return errorf(connect.CodePermissionDenied, "the subject is not enrolled at your sites")
	}
	return s.enrolledIn(ctx, req, func(e *trialv1.Enrollment) bool {
		return slices.Contains(caller.Sites, e.GetSiteId()) && slices.Contains(caller.Trials, e.GetTrialId())
	})
}

// enrolledIn pages the subject's enrollments (in the request's trial and site
// when it names them) until one satisfies ok: PERMISSION_DENIED when none does,
// UNAVAILABLE when the trial service does not answer.
func (s *Service) enrolledIn(ctx context.Context, req *patientv1.GetPatientIdentityRequest, ok func(*trialv1.Enrollment) bool) error {
	page := ""
	for range 20 { // at most 20 pages of a subject's enrollments
		res, err := s.trials.ListEnrollments(ctx, &trialv1.ListEnrollmentsRequest{SubjectUuid: req.GetSubjectUuid(),
			TrialId: req.GetTrialId(), SiteId: req.GetSiteId(), PageSize: 200, PageToken: page})
		if err != nil {
			s.log.WarnContext(ctx, "identity read: the trial service did not answer", "code", connect.CodeOf(err).String())
			return errorf(connect.CodeUnavailable, "the enrollment check is unavailable; nothing was revealed")
		}
		for _, e := range res.GetEnrollments() {
			if e.GetSubjectUuid() == req.GetSubjectUuid() && (req.GetTrialId() == "" || e.GetTrialId() == req.GetTrialId()) &&
				(req.GetSiteId() == "" || e.GetSiteId() == req.GetSiteId()) && ok(e) {
				return nil
			}
		}
		if page = res.GetNextPageToken(); page == "" {
			break
		}
	}
	return errorf(connect.CodePermissionDenied, "the subject is not enrolled at your sites")
}

// denyPII audits a refused identity read in a transaction of its own.
func (s *Service) denyPII(ctx context.Context, req *patientv1.GetPatientIdentityRequest, why string) {
	err := s.tx(ctx, func(ctx context.Context, tx *db.Tx, _ *ent.Client) error {
		_, err := s.audit.Append(ctx, tx, audit.Event{Action: "PII_READ_DENIED", RecordType: "PATIENT_IDENTITY", RecordID: req.GetSubjectUuid(),
			SubjectUUID: req.GetSubjectUuid(), Reason: why, TrialID: req.GetTrialId(), SiteID: req.GetSiteId()})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record a refused identity read", "error", err.Error())
	}
}

// GetSubjectStatus says whether a subject exists and its status.
func (s *Service) GetSubjectStatus(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	res := &patientv1.GetSubjectStatusResponse{SubjectUuid: req.GetSubjectUuid()}
	p, err := s.ent.Patient.Get(ctx, req.GetSubjectUuid())
	if ent.IsNotFound(err) {
		return res, nil
	} else if err != nil {
		return nil, db.ConnectError(err, "subject")
	}
	res.Exists, res.Status = true, statusOf(p.Status)
	res.CreatedAt, res.StatusUpdatedAt = timestamppb.New(p.CreatedAt), timestamppb.New(p.StatusUpdatedAt)
	return res, nil
}
