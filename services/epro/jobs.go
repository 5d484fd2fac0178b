package epro

// River jobs this service owns. Each is inserted in the transaction of the
// response that causes it (the kit's outbox), so a submission never waits for
// another service: with the trial or notification service down, the jobs retry
// with backoff and deliver once it is back. Workers send jobs.Key of the job as
// the idempotency key, so a job run twice (rescued or retried after a lost
// answer) has its effect once.

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
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
	refs := make([]string, 0, len(job.Args.ResponseIDs))
	for _, id := range job.Args.ResponseIDs {
		refs = append(refs, "epro:response/"+id)
	}
	_, err := w.s.trials.RecordVisitCompletion(ctx, &trialv1.RecordVisitCompletionRequest{
		SubjectUuid: job.Args.SubjectUUID, TrialId: job.Args.TrialID, SubjectVisitId: job.Args.SubjectVisitID,
		CompletedAt: timestamppb.New(job.Args.CompletedAt), SourceReferences: refs, IdempotencyKey: jobs.Key(job.JobRow),
	})
	if err != nil {
		return fmt.Errorf("record visit completion: %w", err)
	}
	return nil
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
	})
	if err != nil {
		return fmt.Errorf("send safety alert: %w", err)
	}
	return nil
}
