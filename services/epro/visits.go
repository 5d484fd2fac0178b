package epro

// The local copy of every enrolled subject's planned visits, and ListMyTasks.
//
// Why a worklist cursor and not jobs pushed by the trial service: the copy is
// ePRO's concern, so ePRO pulls it (ListWorklist with updated_after, per trial)
// and the trial service needs to know nothing about ePRO; a copy lost or begun
// late is rebuilt from the cursor's start; ePRO's own downtime loses nothing
// (the cursor waits); and the trial contract already has the cursor, while a
// push would need a contract of its own on ePRO. The cost is a delay of one poll
// interval (default 30 s) between a visit being planned and its tasks appearing.
//
// A subject whose plan has not arrived yet has no tasks, and a submission for
// such a visit is FAILED_PRECONDITION NOT_ENROLLED: the device keeps it (its
// idempotency key too) and sends it again, and it is accepted once the plan is
// here, within the grace period.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/epro/ent"
	"github.com/trialhub/trialhub/services/epro/ent/cursor"
	entq "github.com/trialhub/trialhub/services/epro/ent/questionnaire"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/epro/ent/subjectvisit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/worklist"
)

// PollWorklist is the periodic job that copies changed visits from the trial
// service.
type PollWorklist struct{}

// Kind implements river.JobArgs.
func (PollWorklist) Kind() string { return "epro.poll_worklist" }

type pollWorklistWorker struct {
	river.WorkerDefaults[PollWorklist]
	s *Service
}

func (w *pollWorklistWorker) Work(ctx context.Context, _ *river.Job[PollWorklist]) error {
	return w.s.pollWorklist(ctx)
}

// pollWorklist copies every trial's changed visits since its cursor.
func (s *Service) pollWorklist(ctx context.Context) error {
	return worklist.Trials(ctx, s.trials, func(ctx context.Context, t *trialv1.Trial) error {
		if err := s.trialGrace(ctx, t); err != nil {
			return err
		}
		return s.pollTrial(ctx, t.GetTrialId(), t.GetLateSubmissionGraceHours())
	})
}

// trialGrace copies the trial's grace period onto its visits' copies, where
// SubmitResponse reads it with the visit (no extra read on the hot path). A
// visit copied later takes it from the same row of ListTrials.
func (s *Service) trialGrace(ctx context.Context, t *trialv1.Trial) error {
	grace := t.GetLateSubmissionGraceHours()
	return s.ent.SubjectVisit.Update().Where(subjectvisit.TrialID(t.GetTrialId()),
		subjectvisit.Or(subjectvisit.GraceHoursIsNil(), subjectvisit.GraceHoursNEQ(grace))).
		SetGraceHours(grace).Exec(ctx)
}

func (s *Service) pollTrial(ctx context.Context, trialID string, graceHours int32) error {
	var cursor time.Time
	if c, err := s.ent.Cursor.Get(ctx, trialID); err == nil {
		cursor = c.UpdatedAfter
	} else if !ent.IsNotFound(err) {
		return err
	}
	// A copy made before the worklist carried enrollment dates and site zones
	// lacks them: read the trial again from the start (a copy only moves
	// forward, and a visit read again at the same updated_at is rewritten).
	stale, err := s.ent.SubjectVisit.Query().Where(subjectvisit.TrialID(trialID), subjectvisit.EnrollmentDate("")).Exist(ctx)
	if err != nil {
		return err
	}
	if stale {
		cursor = time.Time{}
	}
	return worklist.Visits(ctx, s.trials, trialID, cursor, func(ctx context.Context, visits []*trialv1.SubjectVisit) error {
		return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			return copyVisits(ctx, ent.NewClient(ent.Driver(tx.Driver())), trialID, visits, graceHours)
		})
	})
}

// copyVisits upserts a page of visits (a copy only moves forward) and advances
// the trial's cursor to the newest updated_at of the page.
func copyVisits(ctx context.Context, c *ent.Client, trialID string, visits []*trialv1.SubjectVisit, graceHours int32) error {
	var newest time.Time
	for _, v := range visits {
		updated := worklist.UpdatedAt(v)
		if updated.After(newest) {
			newest = updated
		}
		var ids []string
		for _, ref := range v.GetQuestionnaires() {
			id, err := localQuestionnaire(ctx, c, ref)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		status := trimEnum(v.GetStatus().String(), "SUBJECT_VISIT_STATUS_")
		existing, err := c.SubjectVisit.Get(ctx, v.GetSubjectVisitId())
		switch {
		case ent.IsNotFound(err):
			err = c.SubjectVisit.Create().SetID(v.GetSubjectVisitId()).SetTrialID(v.GetTrialId()).SetSiteID(v.GetSiteId()).
				SetSubjectUUID(v.GetSubjectUuid()).SetEnrollmentID(v.GetEnrollmentId()).SetVisitCode(v.GetVisitCode()).
				SetVisitName(v.GetVisitName()).SetWindowOpensAt(v.GetWindowOpensAt().AsTime()).
				SetWindowClosesAt(v.GetWindowClosesAt().AsTime()).SetStatus(status).SetQuestionnaireIds(ids).
				SetTrialUpdatedAt(updated).SetEnrollmentDate(v.GetEnrollmentDate()).SetSiteTimeZone(v.GetSiteTimeZone()).
				SetSiteCode(v.GetSiteCode()).SetGraceHours(graceHours).Exec(ctx)
		case err != nil:
		case updated.Before(existing.TrialUpdatedAt):
			continue // an older copy read again through the overlap
		default:
			err = existing.Update().SetSiteID(v.GetSiteId()).SetVisitCode(v.GetVisitCode()).SetVisitName(v.GetVisitName()).
				SetWindowOpensAt(v.GetWindowOpensAt().AsTime()).SetWindowClosesAt(v.GetWindowClosesAt().AsTime()).
				SetStatus(status).SetQuestionnaireIds(ids).SetTrialUpdatedAt(updated).SetEnrollmentDate(v.GetEnrollmentDate()).
				SetSiteTimeZone(v.GetSiteTimeZone()).SetSiteCode(v.GetSiteCode()).SetGraceHours(graceHours).Exec(ctx)
		}
		if err != nil {
			return fmt.Errorf("copy visit %s: %w", v.GetSubjectVisitId(), err)
		}
	}
	if newest.IsZero() {
		return nil
	}
	cur, err := c.Cursor.Get(ctx, trialID)
	switch {
	case ent.IsNotFound(err):
		return c.Cursor.Create().SetID(trialID).SetUpdatedAfter(newest).Exec(ctx)
	case err != nil:
		return err
	case newest.After(cur.UpdatedAfter):
		return c.Cursor.UpdateOneID(trialID).Where(cursor.UpdatedAfterLT(newest)).SetUpdatedAfter(newest).Exec(ctx)
	}
	return nil
}

// localQuestionnaire is the id of the version a schedule names, by id or by
// url|version. A url|version not stored here (yet) is kept as that canonical,
// which no submission can name, so its task cannot be answered until it is.
func localQuestionnaire(ctx context.Context, c *ent.Client, ref *trialv1.QuestionnaireRef) (string, error) {
	if id := ref.GetQuestionnaireId(); id != "" {
		return id, nil
	}
	row, err := c.Questionnaire.Query().Where(entq.URL(ref.GetQuestionnaireUrl()), entq.Version(ref.GetVersion())).First(ctx)
	if ent.IsNotFound(err) {
		return ref.GetQuestionnaireUrl() + "|" + ref.GetVersion(), nil
	}
	if err != nil {
		return "", err
	}
	return row.ID, nil
}

// ListMyTasks lists the calling patient's tasks from the local copy of their
// visits and what they already submitted: due by closing window, then upcoming
// by opening window, then completed, missed and cancelled.
func (s *Service) ListMyTasks(ctx context.Context, req *eprov1.ListMyTasksRequest) (*eprov1.ListMyTasksResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	offset, err := pageOffset(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	query := s.ent.SubjectVisit.Query().Where(subjectvisit.SubjectUUID(caller.Subject))
	if req.GetTrialId() != "" {
		query = query.Where(subjectvisit.TrialID(req.GetTrialId()))
	}
	visits, err := query.Order(ent.Asc(subjectvisit.FieldWindowClosesAt), ent.Asc(subjectvisit.FieldID)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "tasks")
	}
	responses, err := s.ent.Response.Query().Where(entresponse.SubjectUUID(caller.Subject), entresponse.Current(true)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "tasks")
	}
	answered := map[string]*ent.Response{}
	for _, r := range responses {
		if r.Status != "ENTERED_IN_ERROR" {
			answered[r.SubjectVisitID+"|"+r.QuestionnaireID] = r
		}
	}
	refs := map[string]*eprov1.QuestionnaireRef{}
	now := s.now()
	var tasks []*eprov1.QuestionnaireTask
	for _, v := range visits {
		for _, qid := range v.QuestionnaireIds {
			ref, ok := refs[qid]
			if !ok {
				ref = &eprov1.QuestionnaireRef{QuestionnaireId: qid}
				if row, err := s.ent.Questionnaire.Get(ctx, qid); err == nil {
					ref.QuestionnaireUrl, ref.Version, ref.Title = row.URL, row.Version, row.Title
				}
				refs[qid] = ref
			}
			t := &eprov1.QuestionnaireTask{
				TrialId: v.TrialID, SubjectVisitId: v.ID, VisitName: v.VisitName, Questionnaire: ref,
				WindowOpensAt: timestamppb.New(v.WindowOpensAt), WindowClosesAt: timestamppb.New(v.WindowClosesAt),
			}
			r := answered[v.ID+"|"+qid]
			switch {
			case r != nil:
				t.Status, t.ResponseId, t.CompletedAt = eprov1.TaskStatus_TASK_STATUS_COMPLETED, r.ResponseID, timestamppb.New(r.AuthoredAt)
				t.Revision, t.Late = int32(r.Revision), r.Late
			case v.Status == "CANCELLED":
				t.Status = eprov1.TaskStatus_TASK_STATUS_CANCELLED
			case now.Before(v.WindowOpensAt):
				t.Status = eprov1.TaskStatus_TASK_STATUS_UPCOMING
			case now.Before(v.WindowClosesAt):
				t.Status = eprov1.TaskStatus_TASK_STATUS_DUE
			default:
				t.Status = eprov1.TaskStatus_TASK_STATUS_MISSED
			}
			if len(req.GetStatuses()) == 0 || slices.Contains(req.GetStatuses(), t.Status) {
				tasks = append(tasks, t)
			}
		}
	}
	slices.SortStableFunc(tasks, func(a, b *eprov1.QuestionnaireTask) int {
		if ra, rb := taskRank(a.GetStatus()), taskRank(b.GetStatus()); ra != rb {
			return ra - rb
		}
		if a.GetStatus() == eprov1.TaskStatus_TASK_STATUS_UPCOMING {
			return a.GetWindowOpensAt().AsTime().Compare(b.GetWindowOpensAt().AsTime())
		}
		return 0 // already by closing window
	})
	size := pageSize(req.GetPageSize())
	res := &eprov1.ListMyTasksResponse{}
	if offset > len(tasks) {
		offset = len(tasks)
	}
	tasks = tasks[offset:]
	if len(tasks) > size {
		tasks, res.NextPageToken = tasks[:size], nextPage(offset+size)
	}
	res.Tasks = tasks
	return res, nil
}

func taskRank(st eprov1.TaskStatus) int {
	switch st {
	case eprov1.TaskStatus_TASK_STATUS_DUE:
		return 0
	case eprov1.TaskStatus_TASK_STATUS_UPCOMING:
		return 1
	case eprov1.TaskStatus_TASK_STATUS_COMPLETED:
		return 2
	case eprov1.TaskStatus_TASK_STATUS_MISSED:
		return 3
	}
	return 4
}
