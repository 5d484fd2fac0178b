package notification

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"github.com/riverqueue/river"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/notification"
	"github.com/trialhub/trialhub/services/notification/internal/templates"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

// SendNotification implements NotificationService.SendNotification: the
// template and its parameters are checked, then the notification, its delivery
// job (and for an alert its SafetyAlert and first escalation job) are stored in
// one transaction with the idempotency record, and the answer goes at once.
func (s *Service) SendNotification(ctx context.Context, req *notificationv1.SendNotificationRequest) (*notificationv1.SendNotificationResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	values := paramValues(req.GetTemplateParameters())
	if err := templates.Check(req.GetTemplateCode(), values); err != nil {
		var te *templates.Error
		if errors.As(err, &te) {
			return nil, invalid(te.Field, te.Msg)
		}
		return nil, err
	}
	alert := req.GetKind() == notificationv1.NotificationKind_NOTIFICATION_KIND_ALERT
	if alert && req.GetRecipient().GetStaff().GetSiteId() == "" {
		return nil, invalid("recipient.staff.site_id", "an alert goes to the staff of the subject's site: name the site")
	}
	spec := sendSpec{
		requestedBy: caller.Subject, key: req.GetIdempotencyKey(),
		kind:     enumName(req.GetKind().String(), "NOTIFICATION_KIND_"),
		priority: enumName(req.GetPriority().String(), "NOTIFICATION_PRIORITY_"),
		template: req.GetTemplateCode(), values: values,
		subject: req.GetRecipient().GetSubjectUuid(), site: req.GetRecipient().GetStaff().GetSiteId(),
		staff: req.GetRecipient().GetStaff().GetStaffId(), trial: req.GetTrialId(),
		visit: req.GetSubjectVisitId(), about: req.GetAboutSubjectUuid(), source: req.GetSourceReference(),
	}
	if spec.subject != "" && spec.about == "" {
		spec.about = spec.subject
	}
	if req.GetNotBefore() != nil {
		t := req.GetNotBefore().AsTime().Truncate(time.Microsecond) // as the databases keep it
		spec.notBefore = &t
	}
	if req.GetExpiresAt() != nil {
		t := req.GetExpiresAt().AsTime().Truncate(time.Microsecond)
		spec.expiresAt = &t
	}
	fresh := false
	res, err := idempotency.Do(ctx, s.idem, s.db, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
		func(ctx context.Context, tx *db.Tx) (*notificationv1.SendNotificationResponse, error) {
			fresh = true
			c := ent.NewClient(ent.Driver(tx.Driver()))
			if alert {
				n, err := s.raiseAlert(ctx, tx, c, spec)
				if err != nil {
					return nil, err
				}
				return &notificationv1.SendNotificationResponse{Notification: notificationProto(n)}, nil
			}
			n, err := s.createTx(ctx, tx, c, spec)
			if err != nil {
				return nil, err
			}
			return &notificationv1.SendNotificationResponse{Notification: notificationProto(n)}, nil
		})
	if err != nil {
		return nil, db.ConnectError(err, "notification")
	}
	if fresh {
		return res, nil // as accepted: a worker may already have claimed it
	}
	// A replay answers the notification as it is now, not as it was accepted.
	cur, err := s.ent.Notification.Get(ctx, res.GetNotification().GetNotificationId())
	if err != nil {
		return nil, db.ConnectError(err, "notification")
	}
	return &notificationv1.SendNotificationResponse{Notification: notificationProto(cur)}, nil
}

// sendSpec is a notification to create, from a request or from this service's
// own jobs (escalations, reminders).
type sendSpec struct {
	requestedBy, key            string
	kind, priority, template    string
	values                      []templates.Value
	subject, site, staff, group string
	trial, visit, about, source string
	alertID                     string
	notBefore, expiresAt        *time.Time
}

// createTx stores a notification and, unless it already expired, its delivery
// job scheduled at not_before, in tx.
func (s *Service) createTx(ctx context.Context, tx *db.Tx, c *ent.Client, sp sendSpec) (*ent.Notification, error) {
	now := s.now()
	params, err := json.Marshal(sp.values)
	if err != nil {
		return nil, err
	}
	if sp.values == nil {
		params = []byte("[]")
	}
	status := stQueued
	scheduled := now
	if sp.notBefore != nil && sp.notBefore.After(now) {
		scheduled = *sp.notBefore
	}
	if sp.expiresAt != nil && !sp.expiresAt.After(now) {
		status = stExpired
	}
	create := c.Notification.Create().SetID(uuid.NewString()).SetRequestedBy(sp.requestedBy).SetIdempotencyKey(sp.key).
		SetKind(sp.kind).SetStatus(status).SetPriority(sp.priority).SetRecipientSubject(sp.subject).
		SetRecipientSite(sp.site).SetRecipientStaff(sp.staff).SetRecipientRole(sp.group).SetTemplateCode(sp.template).
		SetParameters(string(params)).SetTrialID(sp.trial).SetSubjectVisitID(sp.visit).SetAboutSubjectUUID(sp.about).
		SetSourceReference(sp.source).SetSafetyAlertID(sp.alertID).SetNillableNotBefore(sp.notBefore).
		SetNillableExpiresAt(sp.expiresAt).SetScheduledFor(scheduled).SetCreatedAt(now).SetUpdatedAt(now)
	if status == stQueued {
		create.SetNextAttemptAt(scheduled)
	}
	n, err := create.Save(ctx)
	if err != nil {
		return nil, err
	}
	if status == stQueued {
		if err := s.enqueue(ctx, tx, n.ID, scheduled); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// enqueue inserts the delivery job of a notification, in tx.
func (s *Service) enqueue(ctx context.Context, tx *db.Tx, id string, at time.Time) error {
	opts := &river.InsertOpts{Queue: DeliveryQueue, MaxAttempts: s.cfg.MaxAttempts}
	if at.After(s.now()) {
		opts.ScheduledAt = at
	}
	_, err := s.jobs.InsertTx(ctx, tx, DeliverNotification{NotificationID: id}, opts)
	return err
}

// createOnce is createTx for this service's own sends, keyed by key: a second
// call with the same key returns the first notification.
func (s *Service) createOnce(ctx context.Context, tx *db.Tx, c *ent.Client, sp sendSpec) (*ent.Notification, bool, error) {
	sp.requestedBy = Name
	n, err := c.Notification.Query().Where(notification.RequestedBy(Name), notification.IdempotencyKey(sp.key)).Only(ctx)
	switch {
	case err == nil:
		return n, false, nil
	case !ent.IsNotFound(err):
		return nil, false, err
	}
	n, err = s.createTx(ctx, tx, c, sp)
	return n, err == nil, err
}

// getNotification loads one notification for a handler.
func (s *Service) getNotification(ctx context.Context, id string) (*ent.Notification, error) {
	n, err := s.ent.Notification.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, errorf(connect.CodeNotFound, "notification %s not found", id)
	}
	return n, db.ConnectError(err, "notification")
}
