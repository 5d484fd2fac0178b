package epro

// River jobs this service owns. Each is inserted in the transaction of the
// response that causes it (the kit's outbox), so a submission never waits for
// another service: with the trial or notification service down, the jobs retry
// with backoff and deliver once it is back. Workers send jobs.Key of the job as
// the idempotency key, so a job run twice (rescued or retried after a lost
// answer) has its effect once.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	entresponse "github.com/trialhub/trialhub/services/epro/ent/response"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

// completionAttempts bounds the retries of cross-service jobs: River's backoff
// grows with the attempt, so 25 attempts cover about three weeks of outage
// before a job becomes a dead letter (jobs.Discarded) for an operator.
const completionAttempts = 25

// RecordCompletion tells the trial service that a visit's questionnaires are
// all answered, with the patient's authored_at as the completion time.
type RecordCompletion struct {
	SubjectUUID    string    `json:"subject_uuid"`
	TrialID        string    `json:"trial_id"`
	SubjectVisitID string    `json:"subject_visit_id"`
	CompletedAt    time.Time `json:"completed_at"`
	ResponseIDs    []string  `json:"response_ids"`
}

// Kind implements river.JobArgs.
func (RecordCompletion) Kind() string { return "epro.record_completion" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RecordCompletion) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: completionAttempts}
}

type recordCompletionWorker struct {
	river.WorkerDefaults[RecordCompletion]
	s *Service
}

func (w *recordCompletionWorker) Work(ctx context.Context, job *river.Job[RecordCompletion]) error {
	// A response of the visit entered in error before this job ran: the visit
	// is not complete any more, and its WithdrawCompletion finds nothing to undo.
	voided, err := w.s.ent.Response.Query().Where(entresponse.ResponseIDIn(job.Args.ResponseIDs...), entresponse.Current(true),
		entresponse.Status("ENTERED_IN_ERROR")).Exist(ctx)
	if err != nil {
		return fmt.Errorf("read the visit's responses: %w", err)
	}
	if voided {
		return nil
	}
	refs := make([]string, 0, len(job.Args.ResponseIDs))
	for _, id := range job.Args.ResponseIDs {
		refs = append(refs, "epro:response/"+id)
	}
	_, err = w.s.trials.RecordVisitCompletion(ctx, &trialv1.RecordVisitCompletionRequest{
		SubjectUuid: job.Args.SubjectUUID, TrialId: job.Args.TrialID, SubjectVisitId: job.Args.SubjectVisitID,
		CompletedAt: timestamppb.New(job.Args.CompletedAt), SourceReferences: refs, IdempotencyKey: jobs.Key(job.JobRow),
	})
	if err != nil {
		return fmt.Errorf("record visit completion: %w", err)
	}
	return nil
}

// WithdrawCompletion tells the trial service that a response which completed a
// visit was marked entered in error, so the visit is not complete any more. It
// is inserted with the entered-in-error revision; when the visit was never
// completed (not all its questionnaires answered) the trial service answers a
// no-op.
type WithdrawCompletion struct {
	SubjectUUID    string `json:"subject_uuid"`
	TrialID        string `json:"trial_id"`
	SubjectVisitID string `json:"subject_visit_id"`
	ResponseID     string `json:"response_id"`
	Revision       int    `json:"revision"`
}

// Kind implements river.JobArgs.
func (WithdrawCompletion) Kind() string { return "epro.withdraw_completion" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (WithdrawCompletion) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: completionAttempts}
}

type withdrawCompletionWorker struct {
	river.WorkerDefaults[WithdrawCompletion]
	s *Service
}

// Work withdraws the completion. A completion still on its way (its
// RecordCompletion job not finished, e.g. the trial service was down) could
// land after a withdrawal that found nothing: then the job fails and retries
// until that job has run. Each attempt has its own idempotency key, because a
// no-op answer stored under the first key would be replayed to every retry; a
// repeated withdrawal is a no-op in the trial service, and one for a completion
// of other records (a new response after this one) is FAILED_PRECONDITION,
// which ends the job.
func (w *withdrawCompletionWorker) Work(ctx context.Context, job *river.Job[WithdrawCompletion]) error {
	res, err := w.s.trials.WithdrawVisitCompletion(ctx, &trialv1.WithdrawVisitCompletionRequest{
		SubjectUuid: job.Args.SubjectUUID, TrialId: job.Args.TrialID, SubjectVisitId: job.Args.SubjectVisitID,
		SourceReference: "epro:response/" + job.Args.ResponseID,
		Reason:          fmt.Sprintf("ePRO response entered in error (revision %d)", job.Args.Revision),
		IdempotencyKey:  fmt.Sprintf("%s-%d", jobs.Key(job.JobRow), job.Attempt),
	})
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		return nil // the visit's completion names other records: nothing of this response to withdraw
	}
	if err != nil {
		return fmt.Errorf("withdraw visit completion: %w", err)
	}
	if res.GetVisit().GetStatus() == trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED {
		return fmt.Errorf("visit %s still completed after the withdrawal", job.Args.SubjectVisitID)
	}
	pending, err := w.s.completionOnItsWay(ctx, job.Args.SubjectVisitID)
	if err != nil {
		return err
	}
	if pending {
		return fmt.Errorf("visit %s: its completion is still on its way; withdraw after it", job.Args.SubjectVisitID)
	}
	return nil
}

// completionOnItsWay reports whether a RecordCompletion job for the visit has
// not finished yet (River's outstanding jobs of that kind, few in practice).
func (s *Service) completionOnItsWay(ctx context.Context, visitID string) (bool, error) {
	params := river.NewJobListParams().Kinds(RecordCompletion{}.Kind()).States(rivertype.JobStateAvailable,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled).First(1000)
	for {
		res, err := s.jobs.Client().JobList(ctx, params)
		if err != nil {
			return false, fmt.Errorf("list completion jobs: %w", err)
		}
		for _, row := range res.Jobs {
			var args RecordCompletion
			if err := json.Unmarshal(row.EncodedArgs, &args); err == nil && args.SubjectVisitID == visitID {
				return true, nil
			}
		}
		if len(res.Jobs) < 1000 || res.LastCursor == nil {
			return false, nil
		}
		params = params.After(res.LastCursor)
	}
}

// SafetyAlert asks the notification service to alert the subject's site that an
// alert rule fired. It names the rule, never an answer or score.
type SafetyAlert struct {
	SubjectUUID    string `json:"subject_uuid"`
	TrialID        string `json:"trial_id"`
	SiteID         string `json:"site_id"`
	SubjectVisitID string `json:"subject_visit_id"`
	ResponseID     string `json:"response_id"`
	Rule           string `json:"rule"`
	Urgent         bool   `json:"urgent"`
}

// Kind implements river.JobArgs.
func (SafetyAlert) Kind() string { return "epro.safety_alert" }

// InsertOpts implements river.JobArgsWithInsertOpts: an alert is retried until
// the notification service exists and answers.
func (SafetyAlert) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: completionAttempts}
}

type safetyAlertWorker struct {
	river.WorkerDefaults[SafetyAlert]
	s *Service
}

func (w *safetyAlertWorker) Work(ctx context.Context, job *river.Job[SafetyAlert]) error {
	priority, template := notificationv1.NotificationPriority_NOTIFICATION_PRIORITY_NORMAL, "epro_alert_routine"
	if job.Args.Urgent {
		priority, template = notificationv1.NotificationPriority_NOTIFICATION_PRIORITY_HIGH, "epro_alert_urgent"
	}
	_, err := w.s.notifications.SendNotification(ctx, &notificationv1.SendNotificationRequest{
		IdempotencyKey: jobs.Key(job.JobRow),
		Kind:           notificationv1.NotificationKind_NOTIFICATION_KIND_ALERT,
		Recipient: &notificationv1.Recipient{Target: &notificationv1.Recipient_Staff{Staff: &notificationv1.StaffRecipient{
			Target: &notificationv1.StaffRecipient_SiteId{SiteId: job.Args.SiteID}}}},
		// No parameters: a rule's name can reveal the condition on a lock screen;
		// the site reads the alert in the app.
		TemplateCode:     template,
		Priority:         priority,
		TrialId:          job.Args.TrialID,
		SubjectVisitId:   job.Args.SubjectVisitID,
		AboutSubjectUuid: job.Args.SubjectUUID,
		// The response that raised it, for staff to open after signing in
		// (SafetyAlert.source_reference); never sent to the push vendor.
		SourceReference: "epro:response/" + job.Args.ResponseID,
	})
	if err != nil {
		return fmt.Errorf("send safety alert: %w", err)
	}
	return nil
}
