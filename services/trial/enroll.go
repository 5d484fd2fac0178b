package trial

import (
	"context"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/enrollment"
	"github.com/trialhub/trialhub/services/trial/ent/predicate"
	"github.com/trialhub/trialhub/services/trial/ent/site"
	"github.com/trialhub/trialhub/services/trial/ent/visit"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

// EnrollSubject enrolls a subject the patient service knows as active at an
// open site of a recruiting trial and plans their visits.
func (s *Service) EnrollSubject(ctx context.Context, req *trialv1.EnrollSubjectRequest) (*trialv1.EnrollSubjectResponse, error) {
	who := caller(ctx)
	if !who.CanAccessSite(req.GetSiteId()) || !who.CanAccessTrial(req.GetTrialId()) {
		return nil, connect.NewError(connect.CodePermissionDenied, "site_id: not one of your sites in this trial")
	}
	enrolled, err := plan.ParseDate(req.GetEnrollmentDate())
	if err != nil {
		return nil, invalid("enrollment_date", "%v", plan.ErrBadDate)
	}
	t, st, loc, err := s.enrollTarget(ctx, s.ent, req)
	if err != nil {
		return nil, err
	}
	if today := plan.Today(s.now(), loc); today.AddDays(plan.Lead).Before(enrolled) {
		return nil, invalid("enrollment_date", "is more than %d days after today (%s) in the site's time zone %s", plan.Lead, today, st.TimeZone)
	}
	exists, err := s.ent.Enrollment.Query().Where(enrollment.TrialID(t.ID), enrollment.SubjectUUID(req.GetSubjectUuid())).Exist(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "enrollment")
	}
	if exists {
		return nil, connect.NewError(connect.CodeAlreadyExists, "subject_uuid: already enrolled in this trial")
	}
	if err := s.checkSubject(ctx, req.GetSubjectUuid()); err != nil {
		return nil, err
	}
	return write(ctx, s, req.GetIdempotencyKey(), req, "enrollment",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.EnrollSubjectResponse, error) {
			// Checked again in the transaction: the trial or site may have changed
			// while the patient service answered.
			t, st, loc, err := s.enrollTarget(ctx, c, req)
			if err != nil {
				return nil, err
			}
			sch, err := s.schedule(ctx, c, t.ID, t.CurrentScheduleVersion)
			if err != nil {
				return nil, err
			}
			now := s.stamp()
			e, err := c.Enrollment.Create().SetID(uuid.NewString()).SetTrialID(t.ID).SetSiteID(st.ID).
				SetSubjectUUID(req.GetSubjectUuid()).SetStatus(int32(trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED)).
				SetEnrollmentDate(enrolled.String()).SetScheduleVersion(sch.Version).SetCreatedAt(now).SetUpdatedAt(now).Save(ctx)
			if err != nil {
				return nil, fmt.Errorf("create enrollment: %w", err)
			}
			for _, d := range sch.Visits {
				if err := s.planVisit(ctx, tx, c, e, d, st.TimeZone, loc, enrolled, sch.Version, now); err != nil {
					return nil, err
				}
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "SUBJECT_ENROLLED", RecordType: "ENROLLMENT", RecordID: e.ID,
				SubjectUUID: e.SubjectUUID, TrialID: t.ID, SiteID: st.ID, Field: "enrollment_date", NewValue: e.EnrollmentDate}); err != nil {
				return nil, err
			}
			em, visits, _, err := planOf(ctx, c, e.ID, s.now(), true)
			if err != nil {
				return nil, err
			}
			return &trialv1.EnrollSubjectResponse{Enrollment: em, Visits: visits}, nil
		})
}

// enrollTarget loads and checks the trial and site of an enrollment.
func (s *Service) enrollTarget(ctx context.Context, c *ent.Client, req *trialv1.EnrollSubjectRequest) (*ent.Trial, *ent.Site, *time.Location, error) {
	t, err := c.Trial.Get(ctx, req.GetTrialId())
	if ent.IsNotFound(err) {
		return nil, nil, nil, notFound("trial")
	}
	if err != nil {
		return nil, nil, nil, db.ConnectError(err, "trial")
	}
	if trialv1.TrialStatus(t.Status) != trialv1.TrialStatus_TRIAL_STATUS_RECRUITING {
		return nil, nil, nil, precondition("trial_id", "the trial is %s, not recruiting", trialv1.TrialStatus(t.Status))
	}
	st, err := c.Site.Get(ctx, req.GetSiteId())
	if ent.IsNotFound(err) || (err == nil && st.TrialID != t.ID) {
		return nil, nil, nil, notFound("site")
	}
	if err != nil {
		return nil, nil, nil, db.ConnectError(err, "site")
	}
	if trialv1.SiteStatus(st.Status) != trialv1.SiteStatus_SITE_STATUS_OPEN {
		return nil, nil, nil, precondition("site_id", "the site is closed")
	}
	loc, err := plan.LoadZone(st.TimeZone)
	if err != nil {
		return nil, nil, nil, connect.NewError(connect.CodeInternal, "site time zone unreadable").WithCause(err)
	}
	return t, st, loc, nil
}

// checkSubject asks the patient service whether the subject exists and may take
// part: active, or invited and not yet activated (a site invites a participant
// and enrolls them at once; the patient activates the account later). Suspended
// and closed accounts are refused. When the patient service cannot answer,
// enrollment fails with UNAVAILABLE: never a guess.
func (s *Service) checkSubject(ctx context.Context, subject string) error {
	res, err := s.patients.GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: subject})
	if err != nil {
		return connect.NewError(connect.CodeUnavailable,
			"subject_uuid: the patient service cannot confirm the subject now; retry later").WithCause(err)
	}
	if !res.GetExists() {
		return connect.NewError(connect.CodeFailedPrecondition, "subject_uuid: the patient service knows no such subject")
	}
	switch res.GetStatus() {
	case patientv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, patientv1.AccountStatus_ACCOUNT_STATUS_PENDING_ACTIVATION:
	default:
		return precondition("subject_uuid", "the subject's account is %s, not active", res.GetStatus())
	}
	return nil
}

// visibleEnrollment loads an enrollment the caller may act on: investigators
// only at their sites in their trials (NOT_FOUND otherwise, like a missing one).
func visibleEnrollment(ctx context.Context, c *ent.Client, where ...predicate.Enrollment) (*ent.Enrollment, error) {
	e, err := c.Enrollment.Query().Where(where...).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, notFound("enrollment")
	}
	if err != nil {
		return nil, err
	}
	who := caller(ctx)
	if !who.CanAccessSite(e.SiteID) || !who.CanAccessTrial(e.TrialID) {
		if who.Role != authzv1.Role_ROLE_PATIENT || who.Subject != e.SubjectUUID {
			return nil, notFound("enrollment")
		}
	}
	return e, nil
}

// WithdrawSubject ends an enrollment and cancels its pending visits.
func (s *Service) WithdrawSubject(ctx context.Context, req *trialv1.WithdrawSubjectRequest) (*trialv1.WithdrawSubjectResponse, error) {
	date, err := plan.ParseDate(req.GetWithdrawalDate())
	if err != nil {
		return nil, invalid("withdrawal_date", "%v", plan.ErrBadDate)
	}
	where := []predicate.Enrollment{enrollment.ID(req.GetEnrollmentId())}
	if req.GetEnrollmentId() == "" {
		where = []predicate.Enrollment{enrollment.TrialID(req.GetTrialId()), enrollment.SubjectUUID(req.GetSubjectUuid())}
	}
	return write(ctx, s, req.GetIdempotencyKey(), req, "enrollment",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.WithdrawSubjectResponse, error) {
			e, err := visibleEnrollment(ctx, c, where...)
			if err != nil {
				return nil, err
			}
			if trialv1.EnrollmentStatus(e.Status) != trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED {
				return nil, precondition("enrollment", "the subject is %s, not enrolled", trialv1.EnrollmentStatus(e.Status))
			}
			st, err := c.Site.Get(ctx, e.SiteID)
			if err != nil {
				return nil, err
			}
			loc, err := plan.LoadZone(st.TimeZone)
			if err != nil {
				return nil, err
			}
			enrolled, err := plan.ParseDate(e.EnrollmentDate)
			if err != nil {
				return nil, err
			}
			if today := plan.Today(s.now(), loc); date.Before(enrolled.AddDays(-plan.Lead)) || today.Before(date) {
				return nil, invalid("withdrawal_date", "must lie between %s (%d days before enrollment) and today %s in the site's time zone",
					enrolled.AddDays(-plan.Lead), plan.Lead, today)
			}
			now := s.stamp()
			cancelled, err := c.Visit.Update().Where(visit.EnrollmentID(e.ID), visit.Status(int32(plan.Pending)), visit.ClosesAtGT(s.now())).
				SetStatus(int32(plan.Cancelled)).SetUpdatedAt(now).Save(ctx)
			if err != nil {
				return nil, err
			}
			e, err = e.Update().SetStatus(int32(trialv1.EnrollmentStatus_ENROLLMENT_STATUS_WITHDRAWN)).SetEndDate(date.String()).
				SetEndStudyDay(int32(plan.StudyDay(enrolled, date))).SetWithdrawalReason(int32(req.GetReasonCode())).
				SetWithdrawalText(req.GetReason()).SetUpdatedAt(now).Save(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "SUBJECT_WITHDRAWN", RecordType: "ENROLLMENT", RecordID: e.ID,
				SubjectUUID: e.SubjectUUID, TrialID: e.TrialID, SiteID: e.SiteID, Field: "status",
				OldValue: trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED.String(), NewValue: trialv1.EnrollmentStatus_ENROLLMENT_STATUS_WITHDRAWN.String(),
				Reason: req.GetReasonCode().String() + ": " + req.GetReason()}); err != nil {
				return nil, err
			}
			return &trialv1.WithdrawSubjectResponse{Enrollment: enrollmentMsg(e, st.SiteCode, true), CancelledVisitCount: int32(cancelled)}, nil
		})
}

// enrollmentPage reads one page of enrollments matching where, oldest first,
// after the cursor of token (made for req), and the codes of their sites.
func (s *Service) enrollmentPage(ctx context.Context, req proto.Message, token string, size int32, where []predicate.Enrollment) ([]*ent.Enrollment, map[string]string, string, error) {
	cur, err := readCursor(req, token)
	if err != nil {
		return nil, nil, "", err
	}
	if cur.Key != "" {
		after, err := time.Parse(time.RFC3339Nano, cur.Key)
		if err != nil {
			return nil, nil, "", invalid("page_token", "not a token of this query")
		}
		where = append(where, enrollment.Or(enrollment.CreatedAtGT(after),
			enrollment.And(enrollment.CreatedAt(after), enrollment.IDGT(cur.ID))))
	}
	n := pageSize(size, 50)
	rows, err := s.ent.Enrollment.Query().Where(where...).
		Order(ent.Asc(enrollment.FieldCreatedAt), ent.Asc(enrollment.FieldID)).Limit(n + 1).All(ctx)
	if err != nil {
		return nil, nil, "", db.ConnectError(err, "enrollments")
	}
	next := ""
	if len(rows) > n {
		rows = rows[:n]
		last := rows[n-1]
		next = writeCursor(req, last.CreatedAt.UTC().Format(time.RFC3339Nano), last.ID)
	}
	siteIDs := make([]string, 0, len(rows))
	for _, e := range rows {
		siteIDs = append(siteIDs, e.SiteID)
	}
	sites, err := s.ent.Site.Query().Where(site.IDIn(siteIDs...)).All(ctx)
	if err != nil {
		return nil, nil, "", db.ConnectError(err, "sites")
	}
	codes := map[string]string{}
	for _, st := range sites {
		codes[st.ID] = st.SiteCode + "\x00" + st.TimeZone
	}
	return rows, codes, next, nil
}

func siteCode(codes map[string]string, id string) (code, zone string) {
	code, zone, _ = strings.Cut(codes[id], "\x00")
	return code, zone
}

// ListEnrollments lists enrollments for identified callers.
func (s *Service) ListEnrollments(ctx context.Context, req *trialv1.ListEnrollmentsRequest) (*trialv1.ListEnrollmentsResponse, error) {
	var where []predicate.Enrollment
	if who := caller(ctx); who.Role == authzv1.Role_ROLE_INVESTIGATOR {
		where = append(where, enrollment.SiteIDIn(who.Sites...), enrollment.TrialIDIn(who.Trials...))
	}
	if req.GetTrialId() != "" {
		where = append(where, enrollment.TrialID(req.GetTrialId()))
	}
	if req.GetSiteId() != "" {
		where = append(where, enrollment.SiteID(req.GetSiteId()))
	}
	if req.GetSubjectUuid() != "" {
		where = append(where, enrollment.SubjectUUID(req.GetSubjectUuid()))
	}
	if len(req.GetStatuses()) > 0 {
		where = append(where, enrollment.StatusIn(enumInts(req.GetStatuses())...))
	}
	rows, codes, next, err := s.enrollmentPage(ctx, req, req.GetPageToken(), req.GetPageSize(), where)
	if err != nil {
		return nil, err
	}
	res := &trialv1.ListEnrollmentsResponse{NextPageToken: next}
	for _, e := range rows {
		code, _ := siteCode(codes, e.SiteID)
		res.Enrollments = append(res.Enrollments, enrollmentMsg(e, code, true))
	}
	return res, nil
}

// ListDeidentifiedEnrollments lists a trial's enrollments for analysts: study
// days and statuses, no dates, no timestamps, no free text.
func (s *Service) ListDeidentifiedEnrollments(ctx context.Context, req *trialv1.ListDeidentifiedEnrollmentsRequest) (*trialv1.ListDeidentifiedEnrollmentsResponse, error) {
	if !caller(ctx).CanAccessTrial(req.GetTrialId()) {
		return nil, notFound("trial")
	}
	where := []predicate.Enrollment{enrollment.TrialID(req.GetTrialId())}
	if req.GetSiteId() != "" {
		where = append(where, enrollment.SiteID(req.GetSiteId()))
	}
	if len(req.GetStatuses()) > 0 {
		where = append(where, enrollment.StatusIn(enumInts(req.GetStatuses())...))
	}
	rows, codes, next, err := s.enrollmentPage(ctx, req, req.GetPageToken(), req.GetPageSize(), where)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(rows))
	for _, e := range rows {
		ids = append(ids, e.ID)
	}
	visits, err := s.ent.Visit.Query().Where(visit.EnrollmentIDIn(ids...)).
		Order(ent.Asc(visit.FieldStudyDay), ent.Asc(visit.FieldCode), ent.Asc(visit.FieldID)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "visits")
	}
	byEnrollment := map[string][]*ent.Visit{}
	for _, v := range visits {
		byEnrollment[v.EnrollmentID] = append(byEnrollment[v.EnrollmentID], v)
	}
	now := s.now()
	res := &trialv1.ListDeidentifiedEnrollmentsResponse{NextPageToken: next}
	for _, e := range rows {
		code, zone := siteCode(codes, e.SiteID)
		m := &trialv1.DeidentifiedEnrollment{
			EnrollmentId: e.ID, TrialId: e.TrialID, SiteId: e.SiteID, SiteCode: code, SubjectUuid: e.SubjectUUID,
			Status: trialv1.EnrollmentStatus(e.Status), EndStudyDay: e.EndStudyDay,
			WithdrawalReason: trialv1.WithdrawalReason(e.WithdrawalReason), VisitScheduleVersion: e.ScheduleVersion,
		}
		enrolled, err := plan.ParseDate(e.EnrollmentDate)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, "stored plan is unreadable").WithCause(err)
		}
		loc, err := plan.LoadZone(zone)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, "stored plan is unreadable").WithCause(err)
		}
		for _, v := range byEnrollment[e.ID] {
			w, err := window(v)
			if err != nil {
				return nil, connect.NewError(connect.CodeInternal, "stored plan is unreadable").WithCause(err)
			}
			dv := &trialv1.DeidentifiedVisit{VisitCode: v.Code, TargetStudyDay: v.StudyDay,
				Status: trialv1.SubjectVisitStatus(plan.StatusAt(plan.Status(v.Status), w, now)), VisitScheduleVersion: v.ScheduleVersion}
			if v.CompletedAt != nil {
				dv.CompletedStudyDay = int32(plan.StudyDay(enrolled, plan.DateOf(v.CompletedAt.In(loc))))
			}
			m.Visits = append(m.Visits, dv)
		}
		res.Enrollments = append(res.Enrollments, m)
	}
	return res, nil
}
