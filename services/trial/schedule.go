package trial

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/trial/ent"
	"github.com/trialhub/trialhub/services/trial/ent/enrollment"
	"github.com/trialhub/trialhub/services/trial/ent/schedule"
	"github.com/trialhub/trialhub/services/trial/ent/schema"
	"github.com/trialhub/trialhub/services/trial/ent/visit"
	"github.com/trialhub/trialhub/services/trial/internal/plan"
)

func sortedDefs(defs []schema.VisitDef) []schema.VisitDef {
	out := slices.Clone(defs)
	slices.SortFunc(out, func(a, b schema.VisitDef) int {
		return cmp.Or(cmp.Compare(a.StudyDay, b.StudyDay), cmp.Compare(a.Code, b.Code))
	})
	return out
}

func (s *Service) schedule(ctx context.Context, c *ent.Client, trialID string, version int32) (*ent.Schedule, error) {
	sch, err := c.Schedule.Query().Where(schedule.TrialID(trialID), schedule.Version(version)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, notFound(fmt.Sprintf("visit schedule version %d", version))
	}
	if err != nil {
		return nil, db.ConnectError(err, "visit schedule")
	}
	return sch, nil
}

func scheduleRecordID(trialID string, version int32) string {
	return trialID + "/v" + strconv.Itoa(int(version))
}

// DefineVisitSchedule adds the next schedule version and applies its policy to
// the plans of enrolled subjects.
func (s *Service) DefineVisitSchedule(ctx context.Context, req *trialv1.DefineVisitScheduleRequest) (*trialv1.DefineVisitScheduleResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "visit schedule",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.DefineVisitScheduleResponse, error) {
			t, err := openTrial(ctx, c, req.GetTrialId())
			if err != nil {
				return nil, err
			}
			if req.GetBaseVersion() != t.CurrentScheduleVersion {
				return nil, aborted(t.CurrentScheduleVersion)
			}
			stamp := s.stamp()
			version := t.CurrentScheduleVersion + 1
			sch, err := c.Schedule.Create().SetID(uuid.NewString()).SetTrialID(t.ID).SetVersion(version).
				SetVisits(visitDefs(req.GetVisits())).SetReason(req.GetReason()).
				SetPolicy(int32(req.GetExistingPlanPolicy())).SetCreatedAt(stamp).Save(ctx)
			if db.Code(err) == connect.CodeAlreadyExists { // a concurrent definition took this version
				return nil, aborted(version)
			}
			if err != nil {
				return nil, fmt.Errorf("create schedule: %w", err)
			}
			if _, err := t.Update().SetCurrentScheduleVersion(version).SetUpdatedAt(stamp).Save(ctx); err != nil {
				return nil, err
			}
			if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "VISIT_SCHEDULE_DEFINED", RecordType: "VISIT_SCHEDULE",
				RecordID: scheduleRecordID(t.ID, version), TrialID: t.ID, Field: "version",
				OldValue: strconv.Itoa(int(version - 1)), NewValue: strconv.Itoa(int(version)), Reason: req.GetReason()}); err != nil {
				return nil, err
			}
			res := &trialv1.DefineVisitScheduleResponse{VisitSchedule: scheduleMsg(sch)}
			if req.GetExistingPlanPolicy() == trialv1.ExistingPlanPolicy_EXISTING_PLAN_POLICY_REPLAN_PENDING {
				enrolled, err := c.Enrollment.Query().Where(enrollment.TrialID(t.ID),
					enrollment.Status(int32(trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED))).All(ctx)
				if err != nil {
					return nil, err
				}
				for _, e := range enrolled {
					if err := s.replan(ctx, tx, c, e, sch, req.GetReason(), stamp); err != nil {
						return nil, err
					}
				}
				res.ReplannedEnrollmentCount = int32(len(enrolled))
			}
			return res, nil
		})
}

// MoveToScheduleVersion re-plans one enrollment onto a schedule version.
func (s *Service) MoveToScheduleVersion(ctx context.Context, req *trialv1.MoveToScheduleVersionRequest) (*trialv1.MoveToScheduleVersionResponse, error) {
	return write(ctx, s, req.GetIdempotencyKey(), req, "enrollment",
		func(ctx context.Context, tx *db.Tx, c *ent.Client) (*trialv1.MoveToScheduleVersionResponse, error) {
			e, err := c.Enrollment.Get(ctx, req.GetEnrollmentId())
			if ent.IsNotFound(err) {
				return nil, notFound("enrollment")
			}
			if err != nil {
				return nil, err
			}
			if trialv1.EnrollmentStatus(e.Status) != trialv1.EnrollmentStatus_ENROLLMENT_STATUS_ENROLLED {
				return nil, precondition("enrollment_id", "only ENROLLED subjects are re-planned, this one is %s", trialv1.EnrollmentStatus(e.Status))
			}
			if e.ScheduleVersion == req.GetVisitScheduleVersion() {
				return nil, precondition("visit_schedule_version", "the plan already follows version %d", e.ScheduleVersion)
			}
			sch, err := s.schedule(ctx, c, e.TrialID, req.GetVisitScheduleVersion())
			if err != nil {
				return nil, err
			}
			if err := s.replan(ctx, tx, c, e, sch, req.GetReason(), s.stamp()); err != nil {
				return nil, err
			}
			em, visits, _, err := planOf(ctx, c, e.ID, s.now(), true)
			if err != nil {
				return nil, err
			}
			return &trialv1.MoveToScheduleVersionResponse{Enrollment: em, Visits: visits}, nil
		})
}

// replan moves enrollment e's plan onto schedule version sch (plan.Replan's
// rules) and records the move.
func (s *Service) replan(ctx context.Context, tx *db.Tx, c *ent.Client, e *ent.Enrollment, sch *ent.Schedule, reason string, stamp time.Time) error {
	now := s.now() // decides which visits are still pending; stamp is what rows record
	st, err := c.Site.Get(ctx, e.SiteID)
	if err != nil {
		return err
	}
	loc, err := plan.LoadZone(st.TimeZone)
	if err != nil {
		return err
	}
	enrolled, err := plan.ParseDate(e.EnrollmentDate)
	if err != nil {
		return err
	}
	visits, err := c.Visit.Query().Where(visit.EnrollmentID(e.ID)).All(ctx)
	if err != nil {
		return err
	}
	var planned []plan.Planned
	for _, v := range visits {
		w, err := window(v)
		if err != nil {
			return err
		}
		planned = append(planned, plan.Planned{ID: v.ID, Code: v.Code, Status: plan.StatusAt(plan.Status(v.Status), w, now)})
	}
	defs := map[string]schema.VisitDef{}
	var next []plan.Visit
	for _, d := range sch.Visits {
		defs[d.Code] = d
		next = append(next, domainVisit(d))
	}
	change := plan.Replan(enrolled, loc, now, planned, next)
	for id, dv := range change.Update {
		d := defs[dv.Code]
		w := plan.WindowFor(enrolled, dv, loc)
		if err := c.Visit.UpdateOneID(id).SetName(d.Name).SetStudyDay(int32(d.StudyDay)).
			SetWindowBefore(int32(d.Before)).SetWindowAfter(int32(d.After)).
			SetPlannedDate(w.Planned.String()).SetOpenDate(w.Open.String()).SetCloseDate(w.Close.String()).
			SetOpensAt(w.OpensAt).SetClosesAt(w.ClosesAt).SetQuestionnaires(d.Questionnaires).
			SetScheduleVersion(sch.Version).SetUpdatedAt(stamp).Exec(ctx); err != nil {
			return err
		}
		if err := s.scheduleClose(ctx, tx, id, w.ClosesAt); err != nil {
			return err
		}
	}
	if len(change.Cancel) > 0 {
		if err := c.Visit.Update().Where(visit.IDIn(change.Cancel...)).SetStatus(int32(plan.Cancelled)).SetUpdatedAt(stamp).Exec(ctx); err != nil {
			return err
		}
	}
	for _, dv := range change.Add {
		if err := s.planVisit(ctx, tx, c, e, defs[dv.Code], st.TimeZone, loc, enrolled, sch.Version, stamp); err != nil {
			return err
		}
	}
	old := e.ScheduleVersion
	if err := e.Update().SetScheduleVersion(sch.Version).SetUpdatedAt(stamp).Exec(ctx); err != nil {
		return err
	}
	_, err = s.audit.Append(ctx, tx, audit.Event{Action: "PLAN_MOVED", RecordType: "ENROLLMENT", RecordID: e.ID,
		SubjectUUID: e.SubjectUUID, TrialID: e.TrialID, SiteID: e.SiteID, Field: "visit_schedule_version",
		OldValue: strconv.Itoa(int(old)), NewValue: strconv.Itoa(int(sch.Version)), Reason: reason})
	return err
}

// planVisit plans visit d for enrollment e at a site in zone tz and schedules
// its window's close.
func (s *Service) planVisit(ctx context.Context, tx *db.Tx, c *ent.Client, e *ent.Enrollment, d schema.VisitDef, tz string,
	loc *time.Location, enrolled plan.Date, version int32, stamp time.Time) error {
	w := plan.WindowFor(enrolled, domainVisit(d), loc)
	v, err := c.Visit.Create().SetID(uuid.NewString()).SetEnrollmentID(e.ID).SetTrialID(e.TrialID).SetSiteID(e.SiteID).
		SetSubjectUUID(e.SubjectUUID).SetCode(d.Code).SetName(d.Name).SetStudyDay(int32(d.StudyDay)).
		SetWindowBefore(int32(d.Before)).SetWindowAfter(int32(d.After)).SetTimeZone(tz).
		SetPlannedDate(w.Planned.String()).SetOpenDate(w.Open.String()).SetCloseDate(w.Close.String()).
		SetOpensAt(w.OpensAt).SetClosesAt(w.ClosesAt).SetStatus(int32(plan.Pending)).
		SetQuestionnaires(d.Questionnaires).SetScheduleVersion(version).SetUpdatedAt(stamp).Save(ctx)
	if err != nil {
		return fmt.Errorf("plan visit: %w", err)
	}
	return s.scheduleClose(ctx, tx, v.ID, w.ClosesAt)
}

// planOf reads enrollment id with its site and its visits, ordered by study
// day, then code.
func planOf(ctx context.Context, c *ent.Client, id string, now time.Time, withText bool) (*trialv1.Enrollment, []*trialv1.SubjectVisit, *ent.Site, error) {
	e, err := c.Enrollment.Get(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := c.Site.Get(ctx, e.SiteID)
	if err != nil {
		return nil, nil, nil, err
	}
	rows, err := c.Visit.Query().Where(visit.EnrollmentID(id)).
		Order(ent.Asc(visit.FieldStudyDay), ent.Asc(visit.FieldCode), ent.Asc(visit.FieldID)).All(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	visits, err := visitMsgs(rows, now)
	if err != nil {
		return nil, nil, nil, err
	}
	return enrollmentMsg(e, st.SiteCode, withText), visits, st, nil
}

func aborted(current int32) error {
	return connect.NewError(connect.CodeAborted, fmt.Sprintf("base_version: the current version is %d; reload and retry", current))
}
