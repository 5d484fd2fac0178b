package notification

// Delivery: one River job per notification on DeliveryQueue. Each attempt
// claims the notification (QUEUED/RETRYING, or SENDING when a rescued job of a
// killed worker runs again) with a conditional update, resolves its recipients
// now (a site's staff as the patient service knows them at this moment), renders
// the template per device locale and posts one push per device through the
// bulkhead and the kit's vendor client. The job's idempotency key and the device
// make the vendor's key, so a retried or rescued attempt is delivered once.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/riverqueue/river"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/device"
	"github.com/trialhub/trialhub/services/notification/ent/escalationstep"
	"github.com/trialhub/trialhub/services/notification/ent/notification"
	"github.com/trialhub/trialhub/services/notification/ent/predicate"
	"github.com/trialhub/trialhub/services/notification/internal/templates"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

// DeliverNotification is the River job that delivers one notification.
type DeliverNotification struct {
	NotificationID string `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (DeliverNotification) Kind() string { return "notification.deliver" }

type deliverWorker struct {
	river.WorkerDefaults[DeliverNotification]
	s    *Service
	next sync.Map // job id -> time.Time: the retry time the attempt chose
}

// NextRetry implements river.Worker: the time the failed attempt chose and
// stored as next_attempt_at (backoff with jitter, or the vendor's Retry-After).
func (w *deliverWorker) NextRetry(job *river.Job[DeliverNotification]) time.Time {
	if t, ok := w.next.LoadAndDelete(job.ID); ok {
		return t.(time.Time)
	}
	return time.Time{}
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverNotification]) error {
	err := w.work(ctx, job)
	var snooze *river.JobSnoozeError
	if err != nil && !errors.As(err, &snooze) && job.Attempt >= job.MaxAttempts {
		// The last attempt failed before it could record its end (storage, a
		// cancelled context): River discards the job, so the notification must
		// not be left waiting.
		if errors.As(err, new(*deadError)) {
			return err
		}
		msg := sanitise(err)
		if _, derr := w.s.ent.Notification.Update().Where(notification.ID(job.Args.NotificationID),
			notification.StatusIn(stQueued, stRetrying, stSending)).SetStatus(stDead).SetLastError(msg).
			ClearNextAttemptAt().SetUpdatedAt(w.s.now()).Save(context.WithoutCancel(ctx)); derr != nil {
			return errors.Join(err, derr)
		}
	}
	return err
}

// deadError is the error of a last attempt that already recorded DEAD.
type deadError struct{ msg string }

func (e *deadError) Error() string { return e.msg }

func (w *deliverWorker) work(ctx context.Context, job *river.Job[DeliverNotification]) error {
	s := w.s
	n, ok, err := s.claim(ctx, job.Args.NotificationID)
	if err != nil || !ok {
		return err
	}
	accounts, err := s.recipients(ctx, n)
	if err != nil {
		msg := "recipients: " + connect.CodeOf(err).String()
		return w.transient(ctx, job, n, msg, 0, false)
	}
	if n.RecipientSubject != "" {
		// A closed or suspended account gets nothing. The check fails open: the
		// patient service being down must not hold back a reminder to devices the
		// subject registered themselves.
		st, err := s.patients.GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: n.RecipientSubject})
		if err != nil {
			s.log.Warn("recipient status unknown; delivering", "notification_id", n.ID, "code", connect.CodeOf(err).String())
		} else if !st.GetExists() || st.GetStatus() == patientv1.AccountStatus_ACCOUNT_STATUS_CLOSED || st.GetStatus() == patientv1.AccountStatus_ACCOUNT_STATUS_SUSPENDED {
			return s.finish(ctx, n, finish{status: stFailed, reason: "RECIPIENT_INACTIVE",
				lastError: "recipient inactive: " + enumName(st.GetStatus().String(), "ACCOUNT_STATUS_"), attempted: true})
		}
	}
	devices, err := s.ent.Device.Query().Where(device.AccountIDIn(accounts...), device.PushTokenNotNil(), roleFilter(n)).
		Order(ent.Asc(device.FieldID)).All(ctx)
	if err != nil {
		return err
	}
	if err := s.noteRecipients(ctx, n, accounts, len(devices)); err != nil {
		return err
	}
	if len(devices) == 0 {
		return s.finish(ctx, n, finish{status: stFailed, reason: "NO_DEVICE", lastError: "no registered device", attempted: true})
	}
	var delivered, rejected, transient, notSent int
	var lastErr error
	var retryAfter time.Duration
	key := jobs.Key(job.JobRow)
	values := storedParams(n)
	for _, d := range devices {
		text, err := templates.Render(n.TemplateCode, d.Locale, values)
		if err != nil {
			return err
		}
		push := Push{Token: *d.PushToken, Template: n.TemplateCode, Title: text.Title, Body: text.Body,
			Data: map[string]string{"notification_id": n.ID, "priority": n.Priority}}
		err = s.send(ctx, key+"/"+d.ID, push)
		var ve *VendorError
		switch {
		case err == nil:
			delivered++
			continue
		case errors.Is(err, client.ErrOpen) || errors.Is(err, errBulkhead):
			notSent++
		case errors.As(err, &ve) && ve.Outcome == TokenInvalid:
			if err := s.eraseToken(ctx, d.ID); err != nil {
				return err
			}
		case errors.As(err, &ve) && ve.Outcome == Rejected:
			rejected++
		default:
			transient++
			if errors.As(err, &ve) && ve.RetryAfter > retryAfter {
				retryAfter = ve.RetryAfter
			}
		}
		lastErr = err
	}
	f := finish{devices: len(devices), delivered: delivered, attempted: notSent < len(devices), lastError: sanitise(lastErr)}
	switch {
	case delivered > 0:
		f.status, f.lastError = stDelivered, ""
		return s.finish(ctx, n, f)
	case transient > 0 || notSent > 0:
		return w.transient(ctx, job, n, f.lastError, retryAfter, transient == 0)
	case rejected > 0:
		f.status, f.reason = stFailed, "VENDOR_REJECTED"
	default:
		f.status, f.reason = stFailed, "TOKEN_INVALID"
	}
	return s.finish(ctx, n, f)
}

// transient ends an attempt that may succeed later: RETRYING with the next
// attempt's time, or DEAD when it was the job's last attempt. notSent means no
// push reached the vendor (its breaker was open or the bulkhead full): the job
// is snoozed, costing no attempt.
func (w *deliverWorker) transient(ctx context.Context, job *river.Job[DeliverNotification], n *ent.Notification, msg string, retryAfter time.Duration, notSent bool) error {
	s := w.s
	if notSent {
		wait := jitter(s.cfg.BreakerWait)
		if err := s.finish(ctx, n, finish{status: stRetrying, lastError: msg, next: s.now().Add(wait)}); err != nil {
			return err
		}
		return river.JobSnooze(wait)
	}
	if job.Attempt >= job.MaxAttempts {
		if err := s.finish(ctx, n, finish{status: stDead, lastError: msg, attempted: true}); err != nil {
			return err
		}
		s.log.Warn("notification dead", "notification_id", n.ID, "attempts", job.Attempt, "last_error", msg)
		return &deadError{msg}
	}
	next := s.now().Add(s.retries.after(job.Attempt, retryAfter))
	w.next.Store(job.ID, next)
	if err := s.finish(ctx, n, finish{status: stRetrying, lastError: msg, next: next, attempted: true}); err != nil {
		return err
	}
	return errors.New(msg)
}

var errBulkhead = errors.New("push vendor: every vendor slot busy")

// send posts one push through the bulkhead: at most VendorConcurrency calls are
// in flight per process, however many jobs run.
func (s *Service) send(ctx context.Context, key string, p Push) error {
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	select {
	case s.bulkhead <- struct{}{}:
	case <-wait.C:
		s.metrics.vendor(OutcomeBulked)
		return errBulkhead
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.bulkhead }()
	err := s.vendor.Send(ctx, key, p)
	var ve *VendorError
	switch {
	case err == nil:
		s.metrics.vendor(OutcomeOK)
	case errors.Is(err, client.ErrOpen):
		s.metrics.vendor(OutcomeOpen)
	case errors.As(err, &ve):
		s.metrics.vendor(ve.Outcome)
	default:
		s.metrics.vendor(Transient)
	}
	return err
}

// claim moves a notification to SENDING for an attempt. ok is false when there
// is nothing to deliver (cancelled, delivered, expired meanwhile).
func (s *Service) claim(ctx context.Context, id string) (*ent.Notification, bool, error) {
	n, err := s.ent.Notification.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	if n.ExpiresAt != nil && !n.ExpiresAt.After(now) {
		k, err := s.ent.Notification.Update().Where(notification.ID(id), notification.StatusIn(stQueued, stRetrying, stSending)).
			SetStatus(stExpired).ClearNextAttemptAt().SetUpdatedAt(now).Save(ctx)
		if k == 1 {
			s.log.Info("notification expired", "notification_id", id)
		}
		return nil, false, err
	}
	k, err := s.ent.Notification.Update().Where(notification.ID(id), notification.StatusIn(stQueued, stRetrying, stSending)).
		SetStatus(stSending).ClearNextAttemptAt().SetUpdatedAt(now).Save(ctx)
	if err != nil || k == 0 {
		return nil, false, err
	}
	n.Status = stSending
	return n, true, nil
}

type finish struct {
	status, reason, lastError string
	devices, delivered        int
	attempted                 bool
	next                      time.Time
}

// finish records how an attempt ended, if the notification is still SENDING.
func (s *Service) finish(ctx context.Context, n *ent.Notification, f finish) error {
	now := s.now()
	u := s.ent.Notification.Update().Where(notification.ID(n.ID), notification.Status(stSending)).
		SetStatus(f.status).SetFailureReason(f.reason).SetLastError(f.lastError).SetUpdatedAt(now)
	if f.attempted {
		u.AddAttemptCount(1)
		if n.FirstSentAt == nil {
			u.SetFirstSentAt(now)
		}
	}
	if f.devices > 0 || f.status != stRetrying {
		u.SetDeviceCount(f.devices).SetDeliveredDeviceCount(f.delivered)
	}
	if f.status == stDelivered && n.DeliveredAt == nil {
		u.SetDeliveredAt(now)
	}
	if !f.next.IsZero() {
		u.SetNextAttemptAt(f.next)
	} else {
		u.ClearNextAttemptAt()
	}
	if _, err := u.Save(ctx); err != nil {
		return fmt.Errorf("notification %s: record %s: %w", n.ID, f.status, err)
	}
	return nil
}

// recipients resolves who a notification goes to, now.
func (s *Service) recipients(ctx context.Context, n *ent.Notification) ([]string, error) {
	switch {
	case n.RecipientSubject != "":
		return []string{n.RecipientSubject}, nil
	case n.RecipientStaff != "":
		return []string{n.RecipientStaff}, nil
	case n.RecipientRole == groupAdmins:
		return s.ent.Device.Query().Where(device.Role(authzv1.Role_ROLE_ADMIN.String()), device.PushTokenNotNil()).
			Unique(true).Select(device.FieldAccountID).Strings(ctx)
	case n.RecipientRole == groupTrialStaff:
		t, err := s.trials.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: n.TrialID})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, site := range t.GetSites() {
			if site.GetSiteId() == n.RecipientSite {
				continue
			}
			staff, err := s.siteStaff(ctx, site.GetSiteId(), n.TrialID)
			if err != nil {
				return nil, err
			}
			out = append(out, staff...)
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	case n.RecipientSite != "":
		return s.siteStaff(ctx, n.RecipientSite, n.TrialID)
	}
	return nil, nil
}

// siteStaff is the site's active staff in the trial, as the patient service says now.
func (s *Service) siteStaff(ctx context.Context, site, trial string) ([]string, error) {
	var out []string
	req := &patientv1.ListSiteStaffRequest{SiteId: site, TrialId: trial, PageSize: 100}
	for {
		res, err := s.staff.ListSiteStaff(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, m := range res.GetStaff() {
			out = append(out, m.GetStaffId())
		}
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return out, nil
		}
	}
}

// roleFilter keeps a patient's pushes on patient devices and staff pushes on
// staff devices, so one account id never reaches the other's installations.
func roleFilter(n *ent.Notification) predicate.Device {
	if n.RecipientSubject != "" {
		return device.Role(authzv1.Role_ROLE_PATIENT.String())
	}
	if n.RecipientRole == groupAdmins {
		return device.Role(authzv1.Role_ROLE_ADMIN.String())
	}
	return device.RoleNEQ(authzv1.Role_ROLE_PATIENT.String())
}

// noteRecipients keeps who this attempt addressed (ReportNotificationOpened
// admits them) and, for a safety alert's step, how many staff accounts.
func (s *Service) noteRecipients(ctx context.Context, n *ent.Notification, accounts []string, devices int) error {
	b, _ := json.Marshal(accounts)
	if err := s.ent.Notification.UpdateOneID(n.ID).SetRecipients(string(b)).SetDeviceCount(devices).Exec(ctx); err != nil {
		return err
	}
	if n.SafetyAlertID == "" {
		return nil
	}
	_, err := s.ent.EscalationStep.Update().Where(escalationstep.NotificationID(n.ID)).SetRecipientCount(len(accounts)).Save(ctx)
	return err
}

func (s *Service) eraseToken(ctx context.Context, id string) error {
	return s.ent.Device.UpdateOneID(id).ClearPushToken().SetUnregisteredAt(s.now()).Exec(ctx)
}

// retryPlan is exponential backoff with jitter between base and max.
type retryPlan struct{ base, max time.Duration }

func newRetryPlan(base, max time.Duration) retryPlan { return retryPlan{base, max} }

// after is the wait before the attempt following attempt (1-based): half the
// exponential step plus a random half, at most max, at least the vendor's
// Retry-After.
func (p retryPlan) after(attempt int, retryAfter time.Duration) time.Duration {
	d := p.base
	for i := 1; i < attempt && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	d = jitter(d)
	return max(d, retryAfter)
}

// jitter is d/2 plus a random part of d/2.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}
