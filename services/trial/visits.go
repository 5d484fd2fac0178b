package trial

import (
	"context"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect/v2"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
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

// GetSubjectVisitPlan returns a subject's plan with each visit's status now.
func (s *Service) GetSubjectVisitPlan(ctx context.Context, req *trialv1.GetSubjectVisitPlanRequest) (*trialv1.GetSubjectVisitPlanResponse, error) {
	who := caller(ctx)
	if req.GetSubjectUuid() == "" {
		return nil, invalid("subject_uuid", "required for staff and services")
	}
	e, err := visibleEnrollment(ctx, s.ent, enrollment.TrialID(req.GetTrialId()), enrollment.SubjectUUID(req.GetSubjectUuid()))
	if err != nil {
		return nil, db.ConnectError(err, "visit plan")
	}
	em, visits, st, err := planOf(ctx, s.ent, e.ID, s.now(), who.Role != authzv1.Role_ROLE_PATIENT)
	if err != nil {
		return nil, db.ConnectError(err, "visit plan")
	}
	return &trialv1.GetSubjectVisitPlanResponse{Enrollment: em, TimeZone: st.TimeZone, Visits: visits}, nil
}

// subjectVisit loads a planned visit that belongs to the subject's plan in the
// trial (NOT_FOUND otherwise).
func subjectVisit(ctx context.Context, c *ent.Client, id, subject, trialID string) (*ent.Visit, error) {
	v, err := c.Visit.Query().Where(visit.ID(id), visit.SubjectUUID(subject), visit.TrialID(trialID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, notFound("subject visit")
	}
	return v, err
}

// RecordVisitCompletion completes a visit once; a repeat returns the visit as
// first recorded.
func (s *Service) RecordVisitCompletion(ctx context.Context, req *trialv1.RecordVisitCompletionRequest) (*trialv1.RecordVisitCompletionResponse, error) {
	completed := req.GetCompletedAt().AsTime().UTC().Truncate(time.Microsecond)
	return write(ctx, s, req.GetIdempotencyKey(), req, "subject visit",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.RecordVisitCompletionResponse, error) {
			v, err := subjectVisit(ctx, c, req.GetSubjectVisitId(), req.GetSubjectUuid(), req.GetTrialId())
			if err != nil {
				return nil, err
			}
			now := s.now()
			switch plan.Status(v.Status) {
			case plan.Completed: // the first completion wins
				m, err := visitMsg(v, now)
				return &trialv1.RecordVisitCompletionResponse{Visit: m}, err
			case plan.Cancelled:
				return nil, precondition("subject_visit_id", "the visit was cancelled")
			}
			w, err := window(v)
			if err != nil {
				return nil, err
			}
			// The completion time decides, not the time it is recorded: a response
			// answered inside the window and delivered after it closed (outbox
			// delay) completes the visit; one answered outside never does.
			if !w.Contains(completed) {
				return nil, precondition("completed_at", "outside the visit window [%s, %s)",
					w.OpensAt.Format(time.RFC3339), w.ClosesAt.Format(time.RFC3339))
			}
			// Conditional on the state read above: of two completions racing with
			// different keys, the second waits for the first's row lock, then
			// matches nothing and answers the first's completion.
			n, err := c.Visit.Update().Where(visit.ID(v.ID), visit.StatusIn(int32(plan.Pending), int32(plan.Missed))).
				SetStatus(int32(plan.Completed)).SetCompletedAt(completed).
				SetSourceRefs(req.GetSourceReferences()).SetUpdatedAt(s.stamp()).Save(ctx)
			if err != nil {
				return nil, err
			}
			if v, err = c.Visit.Get(ctx, v.ID); err != nil {
				return nil, err
			}
			if n == 0 {
				if plan.Status(v.Status) != plan.Completed {
					return nil, precondition("subject_visit_id", "the visit was cancelled")
				}
				m, err := visitMsg(v, now)
				return &trialv1.RecordVisitCompletionResponse{Visit: m}, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "VISIT_COMPLETED", RecordType: "SUBJECT_VISIT", RecordID: v.ID,
				SubjectUUID: v.SubjectUUID, TrialID: v.TrialID, SiteID: v.SiteID, Field: "completed_at",
				NewValue: completed.Format(time.RFC3339Nano)}); err != nil {
				return nil, err
			}
			m, err := visitMsg(v, now)
			return &trialv1.RecordVisitCompletionResponse{Visit: m}, err
		})
}

// WithdrawVisitCompletion undoes a completion whose response was entered in
// error.
func (s *Service) WithdrawVisitCompletion(ctx context.Context, req *trialv1.WithdrawVisitCompletionRequest) (*trialv1.WithdrawVisitCompletionResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "subject visit",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.WithdrawVisitCompletionResponse, error) {
			v, err := subjectVisit(ctx, c, req.GetSubjectVisitId(), req.GetSubjectUuid(), req.GetTrialId())
			if err != nil {
				return nil, err
			}
			now := s.now()
			if plan.Status(v.Status) != plan.Completed {
				m, err := visitMsg(v, now)
				return &trialv1.WithdrawVisitCompletionResponse{Visit: m}, err
			}
			if !slices.Contains(v.SourceRefs, req.GetSourceReference()) {
				return nil, precondition("source_reference", "not a record that completed this visit")
			}
			old := v.CompletedAt.UTC().Format(time.RFC3339Nano)
			refs := v.SourceRefs
			n, err := c.Visit.Update().Where(visit.ID(v.ID), visit.Status(int32(plan.Completed)), visit.CompletedAt(*v.CompletedAt)).
				SetStatus(int32(plan.Pending)).ClearCompletedAt().ClearSourceRefs().SetUpdatedAt(s.stamp()).Save(ctx)
			if err != nil {
				return nil, err
			}
			if v, err = c.Visit.Get(ctx, v.ID); err != nil {
				return nil, err
			}
			if n == 0 { // a concurrent withdrawal won
				m, err := visitMsg(v, now)
				return &trialv1.WithdrawVisitCompletionResponse{Visit: m}, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "VISIT_COMPLETION_WITHDRAWN", RecordType: "SUBJECT_VISIT", RecordID: v.ID,
				SubjectUUID: v.SubjectUUID, TrialID: v.TrialID, SiteID: v.SiteID, Field: "completed_at",
				OldValue: old + " " + strings.Join(refs, ","), Reason: req.GetReason()}); err != nil {
				return nil, err
			}
			m, err := visitMsg(v, now)
			return &trialv1.WithdrawVisitCompletionResponse{Visit: m}, err
		})
}

// ListWorklist lists planned visits of a trial by updated_at, filtered by
// status (as of now), window dates and site.
func (s *Service) ListWorklist(ctx context.Context, req *trialv1.ListWorklistRequest) (*trialv1.ListWorklistResponse, error) {
	who := caller(ctx)
	if !who.CanAccessTrial(req.GetTrialId()) {
		return nil, notFound("trial")
	}
	where := []predicate.Visit{visit.TrialID(req.GetTrialId())}
	if req.GetSiteId() != "" {
		if !who.CanAccessSite(req.GetSiteId()) {
			return nil, notFound("site")
		}
		where = append(where, visit.SiteID(req.GetSiteId()))
	} else if who.Role == authzv1.Role_ROLE_INVESTIGATOR {
		where = append(where, visit.SiteIDIn(who.Sites...))
	}
	now := s.now()
	if len(req.GetStatuses()) > 0 {
		var any []predicate.Visit
		for _, st := range req.GetStatuses() {
			switch st {
			case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING:
				any = append(any, visit.And(visit.Status(int32(plan.Pending)), visit.ClosesAtGT(now)))
			case trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_MISSED: // written by WindowClosed, or not yet
				any = append(any, visit.Status(int32(plan.Missed)), visit.And(visit.Status(int32(plan.Pending)), visit.ClosesAtLTE(now)))
			default:
				any = append(any, visit.Status(int32(st)))
			}
		}
		where = append(where, visit.Or(any...))
	}
	if d := req.GetWindowFromDate(); d != "" {
		where = append(where, visit.CloseDateGTE(d)) // ISO dates order as strings
	}
	if d := req.GetWindowToDate(); d != "" {
		where = append(where, visit.OpenDateLTE(d))
	}
	if req.GetUpdatedAfter() != nil {
		where = append(where, visit.UpdatedAtGT(req.GetUpdatedAfter().AsTime()))
	}
	cur, err := readCursor(req, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if cur.Key != "" {
		after, err := time.Parse(time.RFC3339Nano, cur.Key)
		if err != nil {
			return nil, invalid("page_token", "not a token of this query")
		}
		where = append(where, visit.Or(visit.UpdatedAtGT(after), visit.And(visit.UpdatedAt(after), visit.IDGT(cur.ID))))
	}
	n := pageSize(req.GetPageSize(), 100)
	rows, err := s.ent.Visit.Query().Where(where...).
		Order(ent.Asc(visit.FieldUpdatedAt), ent.Asc(visit.FieldID)).Limit(n + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "worklist")
	}
	res := &trialv1.ListWorklistResponse{}
	if len(rows) > n {
		rows = rows[:n]
		last := rows[n-1]
		res.NextPageToken = writeCursor(req, last.UpdatedAt.UTC().Format(time.RFC3339Nano), last.ID)
	}
	if res.Visits, err = visitMsgs(rows, now); err != nil {
		return nil, connect.NewError(connect.CodeInternal, "stored plan is unreadable").WithCause(err)
	}
	if err := s.addEnrollmentDates(ctx, res.Visits); err != nil {
		return nil, db.ConnectError(err, "worklist")
	}
	return res, nil
}

// addEnrollmentDates sets each worklist visit's enrollment date and site code,
// two queries per page, so a copy of the plan (ePRO's) counts study days
// without calling back.
func (s *Service) addEnrollmentDates(ctx context.Context, visits []*trialv1.SubjectVisit) error {
	var enrollments, sites []string
	for _, v := range visits {
		enrollments = append(enrollments, v.GetEnrollmentId())
		sites = append(sites, v.GetSiteId())
	}
	slices.Sort(enrollments)
	slices.Sort(sites)
	es, err := s.ent.Enrollment.Query().Where(enrollment.IDIn(slices.Compact(enrollments)...)).All(ctx)
	if err != nil {
		return err
	}
	ss, err := s.ent.Site.Query().Where(site.IDIn(slices.Compact(sites)...)).All(ctx)
	if err != nil {
		return err
	}
	dates, codes := map[string]string{}, map[string]string{}
	for _, e := range es {
		dates[e.ID] = e.EnrollmentDate
	}
	for _, st := range ss {
		codes[st.ID] = st.SiteCode
	}
	for _, v := range visits {
		v.EnrollmentDate, v.SiteCode = dates[v.GetEnrollmentId()], codes[v.GetSiteId()]
	}
	return nil
}
