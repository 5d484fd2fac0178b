package notification

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/notification"
	"github.com/trialhub/trialhub/services/notification/ent/predicate"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// GetNotification implements NotificationService.GetNotification.
func (s *Service) GetNotification(ctx context.Context, req *notificationv1.GetNotificationRequest) (*notificationv1.GetNotificationResponse, error) {
	n, err := s.getNotification(ctx, req.GetNotificationId())
	if err != nil {
		return nil, err
	}
	return &notificationv1.GetNotificationResponse{Notification: notificationProto(n)}, nil
}

// ListNotifications implements NotificationService.ListNotifications: newest
// first, paged by a (created_at, id) cursor.
func (s *Service) ListNotifications(ctx context.Context, req *notificationv1.ListNotificationsRequest) (*notificationv1.ListNotificationsResponse, error) {
	var where []predicate.Notification
	if len(req.GetStatuses()) > 0 {
		var names []string
		for _, st := range req.GetStatuses() {
			names = append(names, statusName(st))
		}
		where = append(where, notification.StatusIn(names...))
	}
	if len(req.GetKinds()) > 0 {
		var names []string
		for _, k := range req.GetKinds() {
			names = append(names, enumName(k.String(), "NOTIFICATION_KIND_"))
		}
		where = append(where, notification.KindIn(names...))
	}
	if v := req.GetSubjectUuid(); v != "" {
		where = append(where, notification.Or(notification.RecipientSubject(v), notification.AboutSubjectUUID(v)))
	}
	if v := req.GetSiteId(); v != "" {
		where = append(where, notification.RecipientSite(v))
	}
	if v := req.GetTrialId(); v != "" {
		where = append(where, notification.TrialID(v))
	}
	if req.GetCreatedFrom() != nil {
		where = append(where, notification.CreatedAtGTE(req.GetCreatedFrom().AsTime()))
	}
	if req.GetCreatedUntil() != nil {
		where = append(where, notification.CreatedAtLT(req.GetCreatedUntil().AsTime()))
	}
	if tok := req.GetPageToken(); tok != "" {
		at, id, err := parseCursor(tok)
		if err != nil {
			return nil, err
		}
		where = append(where, notification.Or(notification.CreatedAtLT(at),
			notification.And(notification.CreatedAt(at), notification.IDLT(id))))
	}
	size := pageSize(req.GetPageSize())
	rows, err := s.ent.Notification.Query().Where(where...).
		Order(ent.Desc(notification.FieldCreatedAt), ent.Desc(notification.FieldID)).Limit(size + 1).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "notifications")
	}
	res := &notificationv1.ListNotificationsResponse{}
	if len(rows) > size {
		rows = rows[:size]
		last := rows[size-1]
		res.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(last.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID))
	}
	for _, n := range rows {
		res.Notifications = append(res.Notifications, notificationProto(n))
	}
	return res, nil
}

func parseCursor(tok string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		at, id, ok := strings.Cut(string(b), "|")
		if t, err := time.Parse(time.RFC3339Nano, at); ok && err == nil {
			return t, id, nil
		}
	}
	return time.Time{}, "", invalid("page_token", "not a token of this listing")
}

// CancelNotification implements NotificationService.CancelNotification: a
// QUEUED or RETRYING notification is CANCELLED (its job then finds nothing to
// do); a CANCELLED one is returned as it is; others are FAILED_PRECONDITION.
func (s *Service) CancelNotification(ctx context.Context, req *notificationv1.CancelNotificationRequest) (*notificationv1.CancelNotificationResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	var n *ent.Notification
	var err error
	if id := req.GetNotificationId(); id != "" {
		n, err = s.getNotification(ctx, id)
	} else {
		n, err = s.ent.Notification.Query().Where(notification.RequestedBy(caller.Subject),
			notification.IdempotencyKey(req.GetIdempotencyKey())).Only(ctx)
		if ent.IsNotFound(err) {
			err = errorf(connect.CodeNotFound, "no notification of yours has idempotency_key %q", req.GetIdempotencyKey())
		}
	}
	if err != nil {
		return nil, db.ConnectError(err, "notification")
	}
	n, err = s.cancel(ctx, n, req.GetReason(), audit.Actor{})
	if err != nil {
		return nil, err
	}
	return &notificationv1.CancelNotificationResponse{Notification: notificationProto(n)}, nil
}

// cancel cancels n with reason, audited as actor (the zero Actor is the caller).
func (s *Service) cancel(ctx context.Context, n *ent.Notification, reason string, actor audit.Actor) (*ent.Notification, error) {
	if n.Status == stCancelled {
		return n, nil
	}
	err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		return s.cancelTx(ctx, tx, ent.NewClient(ent.Driver(tx.Driver())), n, reason, actor)
	})
	if err != nil {
		return nil, db.ConnectError(err, "notification")
	}
	cur, err := s.ent.Notification.Get(ctx, n.ID)
	return cur, db.ConnectError(err, "notification")
}

// RequeueNotification implements NotificationService.RequeueNotification: a
// FAILED or DEAD notification is QUEUED again with a new delivery job (a fresh
// retry budget), audited with the reason.
func (s *Service) RequeueNotification(ctx context.Context, req *notificationv1.RequeueNotificationRequest) (*notificationv1.RequeueNotificationResponse, error) {
	n, err := s.getNotification(ctx, req.GetNotificationId())
	if err != nil {
		return nil, err
	}
	err = s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		c := ent.NewClient(ent.Driver(tx.Driver()))
		now := s.now()
		k, err := c.Notification.Update().Where(notification.ID(n.ID), notification.StatusIn(stFailed, stDead)).
			SetStatus(stQueued).SetFailureReason("").SetNextAttemptAt(now).AddRequeueCount(1).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return err
		}
		if k == 0 {
			cur, err := c.Notification.Get(ctx, n.ID)
			if err != nil {
				return err
			}
			return errorf(connect.CodeFailedPrecondition, "notification %s is %s: only a FAILED or DEAD notification can be re-queued", n.ID, cur.Status)
		}
		if err := s.enqueue(ctx, tx, n.ID, now); err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Event{Action: "NOTIFICATION_REQUEUED", RecordType: "NOTIFICATION",
			RecordID: n.ID, SubjectUUID: n.AboutSubjectUUID, Field: "status", OldValue: n.Status, NewValue: stQueued,
			Reason: req.GetReason(), TrialID: n.TrialID, SiteID: n.RecipientSite})
		return err
	})
	if err != nil {
		return nil, db.ConnectError(err, "notification")
	}
	s.log.Info("notification re-queued", "notification_id", n.ID, "was", n.Status)
	cur, err := s.getNotification(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	return &notificationv1.RequeueNotificationResponse{Notification: notificationProto(cur)}, nil
}

// ReportNotificationOpened implements NotificationService.ReportNotificationOpened:
// only an account the notification was addressed to may report it.
func (s *Service) ReportNotificationOpened(ctx context.Context, req *notificationv1.ReportNotificationOpenedRequest) (*notificationv1.ReportNotificationOpenedResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	n, err := s.getNotification(ctx, req.GetNotificationId())
	if err != nil {
		return nil, err
	}
	var accounts []string
	_ = json.Unmarshal([]byte(n.Recipients), &accounts)
	if !slices.Contains(accounts, caller.Subject) && n.RecipientSubject != caller.Subject {
		return nil, errorf(connect.CodeNotFound, "notification %s not found", n.ID)
	}
	if n.OpenedAt == nil {
		now := s.now()
		if _, err := s.ent.Notification.Update().Where(notification.ID(n.ID), notification.OpenedAtIsNil()).
			SetOpenedAt(now).Save(ctx); err != nil {
			return nil, db.ConnectError(err, "notification")
		}
		if n, err = s.getNotification(ctx, n.ID); err != nil {
			return nil, err
		}
	}
	return &notificationv1.ReportNotificationOpenedResponse{OpenedAt: timestamppb.New(*n.OpenedAt)}, nil
}

// cancelTx cancels n in tx if it is QUEUED or RETRYING, audited as actor.
func (s *Service) cancelTx(ctx context.Context, tx *db.Tx, c *ent.Client, n *ent.Notification, reason string, actor audit.Actor) error {
	k, err := c.Notification.Update().Where(notification.ID(n.ID), notification.StatusIn(stQueued, stRetrying)).
		SetStatus(stCancelled).SetCancelReason(reason).ClearNextAttemptAt().SetUpdatedAt(s.now()).Save(ctx)
	if err != nil {
		return err
	}
	if k == 0 {
		cur, err := c.Notification.Get(ctx, n.ID)
		if err != nil {
			return err
		}
		if cur.Status == stCancelled {
			return nil
		}
		return errorf(connect.CodeFailedPrecondition, "notification %s is %s: only a QUEUED or RETRYING notification can be cancelled", n.ID, cur.Status)
	}
	_, err = s.audit.Append(ctx, tx, audit.Event{Actor: actor, Action: "NOTIFICATION_CANCELLED", RecordType: "NOTIFICATION",
		RecordID: n.ID, SubjectUUID: n.AboutSubjectUUID, Field: "status", OldValue: n.Status, NewValue: stCancelled,
		Reason: reason, TrialID: n.TrialID, SiteID: n.RecipientSite})
	return err
}
