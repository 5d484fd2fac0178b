package notification

// Safety alerts. A SendNotification of kind ALERT raises a SafetyAlert at level
// SITE_INVESTIGATORS with its first notification, and schedules an Escalate job
// at escalate_at, all in the send's transaction. If nobody acknowledged the
// alert by then, the job sends it to the staff of the trial's other sites
// (TRIAL_STAFF), and one escalation time later to the administrators' devices
// (ADMINS): each step a notification and an EscalationStep, audited and logged.

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/escalationstep"
	"github.com/trialhub/trialhub/services/notification/ent/predicate"
	"github.com/trialhub/trialhub/services/notification/ent/safetyalert"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

// Alert states and levels as stored.
const (
	alertOpen         = "OPEN"
	alertAcknowledged = "ACKNOWLEDGED"
	levelSite         = "SITE_INVESTIGATORS"
	levelTrial        = "TRIAL_STAFF"
	levelAdmins       = "ADMINS"
)

var serviceActor = audit.Actor{ID: Name, Role: authzv1.Role_ROLE_SERVICE.String(), Kind: audit.ActorService}

// raiseAlert stores a new safety alert, its first notification and step, and its
// escalation job, in tx.
func (s *Service) raiseAlert(ctx context.Context, tx *db.Tx, c *ent.Client, sp sendSpec) (*ent.Notification, error) {
	now := s.now()
	id := uuid.NewString()
	escalateAt := now.Add(s.cfg.EscalateAfter)
	if _, err := c.SafetyAlert.Create().SetID(id).SetTrialID(sp.trial).SetSiteID(sp.site).SetAboutSubjectUUID(sp.about).
		SetSourceReference(sp.source).SetTemplateCode(sp.template).SetPriority(sp.priority).SetStatus(alertOpen).
		SetLevel(levelSite).SetRaisedAt(now).SetEscalateAt(escalateAt).Save(ctx); err != nil {
		return nil, err
	}
	sp.alertID = id
	n, err := s.createTx(ctx, tx, c, sp)
	if err != nil {
		return nil, err
	}
	if err := c.EscalationStep.Create().SetID(uuid.NewString()).SetAlertID(id).SetLevel(levelSite).SetAt(now).
		SetNotificationID(n.ID).SetRecipientCount(0).Exec(ctx); err != nil {
		return nil, err
	}
	if _, err := s.jobs.InsertTx(ctx, tx, Escalate{AlertID: id, Level: levelTrial}, &river.InsertOpts{ScheduledAt: escalateAt}); err != nil {
		return nil, err
	}
	if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "SAFETY_ALERT_RAISED", RecordType: "SAFETY_ALERT", RecordID: id,
		SubjectUUID: sp.about, NewValue: levelSite, TrialID: sp.trial, SiteID: sp.site}); err != nil {
		return nil, err
	}
	s.log.Info("safety alert raised", "alert_id", id, "notification_id", n.ID, "escalate_at", escalateAt)
	return n, nil
}

// Escalate is the River job that escalates an open safety alert to Level.
type Escalate struct {
	AlertID string `json:"alert_id"`
	Level   string `json:"level"`
}

// Kind implements river.JobArgs.
func (Escalate) Kind() string { return "notification.escalate" }

type escalateWorker struct {
	river.WorkerDefaults[Escalate]
	s *Service
}

func (w *escalateWorker) Work(ctx context.Context, job *river.Job[Escalate]) error {
	return w.s.escalate(ctx, job.Args.AlertID, job.Args.Level)
}

// escalate takes one escalation step if the alert is still open and below level.
func (s *Service) escalate(ctx context.Context, alertID, level string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		c := ent.NewClient(ent.Driver(tx.Driver()))
		a, err := c.SafetyAlert.Get(ctx, alertID)
		if err != nil {
			return fmt.Errorf("safety alert %s: %w", alertID, err)
		}
		if a.Status != alertOpen || levelRank(a.Level) >= levelRank(level) {
			return nil // acknowledged meanwhile, or this step was taken
		}
		now := s.now()
		sp := sendSpec{key: "escalation:" + a.ID + ":" + level, kind: "ALERT", priority: "HIGH", template: a.TemplateCode,
			trial: a.TrialID, about: a.AboutSubjectUUID, source: a.SourceReference, alertID: a.ID, site: a.SiteID}
		next := ""
		switch level {
		case levelTrial:
			sp.group, next = groupTrialStaff, levelAdmins
		case levelAdmins:
			sp.group, sp.site = groupAdmins, ""
		default:
			return fmt.Errorf("safety alert %s: unknown level %q", a.ID, level)
		}
		n, _, err := s.createOnce(ctx, tx, c, sp)
		if err != nil {
			return err
		}
		if err := c.EscalationStep.Create().SetID(uuid.NewString()).SetAlertID(a.ID).SetLevel(level).SetAt(now).
			SetNotificationID(n.ID).SetRecipientCount(0).Exec(ctx); err != nil {
			return err
		}
		u := a.Update().SetLevel(level)
		if next != "" {
			at := now.Add(s.cfg.EscalateAfter)
			u.SetEscalateAt(at)
			if _, err := s.jobs.InsertTx(ctx, tx, Escalate{AlertID: a.ID, Level: next}, &river.InsertOpts{ScheduledAt: at}); err != nil {
				return err
			}
		} else {
			u.ClearEscalateAt()
		}
		if err := u.Exec(ctx); err != nil {
			return err
		}
		if _, err := s.audit.Append(ctx, tx, audit.Event{Actor: serviceActor, Action: "SAFETY_ALERT_ESCALATED",
			RecordType: "SAFETY_ALERT", RecordID: a.ID, SubjectUUID: a.AboutSubjectUUID, Field: "escalation_level",
			OldValue: a.Level, NewValue: level, Reason: "not acknowledged within " + s.cfg.EscalateAfter.String(),
			TrialID: a.TrialID, SiteID: a.SiteID}); err != nil {
			return err
		}
		s.log.Warn("safety alert escalated", "alert_id", a.ID, "from", a.Level, "to", level, "notification_id", n.ID)
		return nil
	})
}

func levelRank(l string) int {
	return slices.Index([]string{levelSite, levelTrial, levelAdmins}, l)
}

// ListSafetyAlerts implements NotificationService.ListSafetyAlerts: open alerts
// oldest first, then acknowledged ones newest first. Investigators see their
// sites and trials only.
func (s *Service) ListSafetyAlerts(ctx context.Context, req *notificationv1.ListSafetyAlertsRequest) (*notificationv1.ListSafetyAlertsResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	var where []predicate.SafetyAlert
	if caller.Role == authzv1.Role_ROLE_INVESTIGATOR {
		if v := req.GetSiteId(); v != "" && !slices.Contains(caller.Sites, v) {
			return nil, errorf(connect.CodePermissionDenied, "site %s is not in your scope", v)
		}
		if v := req.GetTrialId(); v != "" && !slices.Contains(caller.Trials, v) {
			return nil, errorf(connect.CodePermissionDenied, "trial %s is not in your scope", v)
		}
		where = append(where, safetyalert.SiteIDIn(caller.Sites...), safetyalert.TrialIDIn(caller.Trials...))
	}
	if v := req.GetSiteId(); v != "" {
		where = append(where, safetyalert.SiteID(v))
	}
	if v := req.GetTrialId(); v != "" {
		where = append(where, safetyalert.TrialID(v))
	}
	if len(req.GetStatuses()) > 0 {
		var names []string
		for _, st := range req.GetStatuses() {
			names = append(names, enumName(st.String(), "SAFETY_ALERT_STATUS_"))
		}
		where = append(where, safetyalert.StatusIn(names...))
	}
	offset, err := parseOffset(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pageSize(req.GetPageSize())
	// Open alerts oldest first (what a site works through), then acknowledged
	// ones newest first; the page token is the position in that order.
	open := s.ent.SafetyAlert.Query().Where(append(where, safetyalert.Status(alertOpen))...)
	openCount, err := open.Clone().Count(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "safety alerts")
	}
	var rows []*ent.SafetyAlert
	if offset < openCount {
		if rows, err = open.Order(ent.Asc(safetyalert.FieldRaisedAt), ent.Asc(safetyalert.FieldID)).
			Offset(offset).Limit(size + 1).All(ctx); err != nil {
			return nil, db.ConnectError(err, "safety alerts")
		}
	}
	if len(rows) <= size {
		acked, err := s.ent.SafetyAlert.Query().Where(append(where, safetyalert.StatusNEQ(alertOpen))...).
			Order(ent.Desc(safetyalert.FieldRaisedAt), ent.Desc(safetyalert.FieldID)).
			Offset(max(offset-openCount, 0)).Limit(size + 1 - len(rows)).All(ctx)
		if err != nil {
			return nil, db.ConnectError(err, "safety alerts")
		}
		rows = append(rows, acked...)
	}
	res := &notificationv1.ListSafetyAlertsResponse{}
	if len(rows) > size {
		rows = rows[:size]
		res.NextPageToken = offsetToken(offset + size)
	}
	for _, a := range rows {
		pb, err := s.alertProto(ctx, a)
		if err != nil {
			return nil, err
		}
		res.Alerts = append(res.Alerts, pb)
	}
	return res, nil
}

// AcknowledgeSafetyAlert implements NotificationService.AcknowledgeSafetyAlert.
func (s *Service) AcknowledgeSafetyAlert(ctx context.Context, req *notificationv1.AcknowledgeSafetyAlertRequest) (*notificationv1.AcknowledgeSafetyAlertResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	a, err := s.ent.SafetyAlert.Get(ctx, req.GetAlertId())
	if ent.IsNotFound(err) {
		return nil, errorf(connect.CodeNotFound, "safety alert %s not found", req.GetAlertId())
	}
	if err != nil {
		return nil, db.ConnectError(err, "safety alert")
	}
	if caller.Role == authzv1.Role_ROLE_INVESTIGATOR && (!slices.Contains(caller.Sites, a.SiteID) || !slices.Contains(caller.Trials, a.TrialID)) {
		return nil, errorf(connect.CodePermissionDenied, "safety alert %s is of a site or trial outside your scope", a.ID)
	}
	if a.Status == alertOpen {
		err := s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			c := ent.NewClient(ent.Driver(tx.Driver()))
			now := s.now()
			k, err := c.SafetyAlert.Update().Where(safetyalert.ID(a.ID), safetyalert.Status(alertOpen)).
				SetStatus(alertAcknowledged).SetAcknowledgedAt(now).SetAcknowledgedBy(caller.Subject).ClearEscalateAt().Save(ctx)
			if err != nil || k == 0 {
				return err
			}
			_, err = s.audit.Append(ctx, tx, audit.Event{Action: "SAFETY_ALERT_ACKNOWLEDGED", RecordType: "SAFETY_ALERT",
				RecordID: a.ID, SubjectUUID: a.AboutSubjectUUID, Field: "status", OldValue: alertOpen, NewValue: alertAcknowledged,
				TrialID: a.TrialID, SiteID: a.SiteID})
			return err
		})
		if err != nil {
			return nil, db.ConnectError(err, "safety alert")
		}
		s.log.Info("safety alert acknowledged", "alert_id", a.ID, "level", a.Level)
		if a, err = s.ent.SafetyAlert.Get(ctx, a.ID); err != nil {
			return nil, db.ConnectError(err, "safety alert")
		}
	}
	pb, err := s.alertProto(ctx, a)
	if err != nil {
		return nil, err
	}
	return &notificationv1.AcknowledgeSafetyAlertResponse{Alert: pb}, nil
}

func (s *Service) alertProto(ctx context.Context, a *ent.SafetyAlert) (*notificationv1.SafetyAlert, error) {
	steps, err := s.ent.EscalationStep.Query().Where(escalationstep.AlertID(a.ID)).Order(ent.Asc(escalationstep.FieldAt)).All(ctx)
	if err != nil {
		return nil, db.ConnectError(err, "escalation steps")
	}
	pb := &notificationv1.SafetyAlert{
		AlertId: a.ID, TrialId: a.TrialID, SiteId: a.SiteID, AboutSubjectUuid: a.AboutSubjectUUID,
		SourceReference: a.SourceReference, TemplateCode: a.TemplateCode,
		Priority:        notificationv1.NotificationPriority(notificationv1.NotificationPriority_value["NOTIFICATION_PRIORITY_"+a.Priority]),
		Status:          notificationv1.SafetyAlertStatus(notificationv1.SafetyAlertStatus_value["SAFETY_ALERT_STATUS_"+a.Status]),
		EscalationLevel: notificationv1.EscalationLevel(notificationv1.EscalationLevel_value["ESCALATION_LEVEL_"+a.Level]),
		RaisedAt:        timestamppb.New(a.RaisedAt), EscalateAt: ts(a.EscalateAt), AcknowledgedAt: ts(a.AcknowledgedAt),
		AcknowledgedBy: a.AcknowledgedBy,
	}
	for _, st := range steps {
		pb.Steps = append(pb.Steps, &notificationv1.EscalationStep{
			Level: notificationv1.EscalationLevel(notificationv1.EscalationLevel_value["ESCALATION_LEVEL_"+st.Level]),
			At:    timestamppb.New(st.At), NotificationId: st.NotificationID, RecipientCount: int32(st.RecipientCount),
		})
	}
	return pb, nil
}
