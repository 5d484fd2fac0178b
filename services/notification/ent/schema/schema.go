// Package schema is the notification service's storage model: device
// registrations (push tokens live only here), notifications and their delivery
// log, safety alerts with their escalation steps, and the reminders planned from
// the trial service's worklist. It holds subject_uuid and staff ids, never a
// name, a phone number or a questionnaire answer.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Device is one app installation registered to receive pushes.
type Device struct{ ent.Schema }

// Fields of Device.
func (Device) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		// account_id is the token's subject: a subject_uuid or a staff id.
		field.String("account_id"),
		// role is the contract's Role name the device was registered under
		// ("ROLE_PATIENT", "ROLE_INVESTIGATOR", "ROLE_ADMIN").
		field.String("role"),
		// push_token is the vendor's token; erased (NULL) when unregistered.
		field.String("push_token").Optional().Nillable().Sensitive(),
		// platform is the contract's DevicePlatform name, e.g. "IOS".
		field.String("platform"),
		field.String("app_version"),
		field.String("locale"),
		field.Time("registered_at").Immutable(),
		field.Time("last_seen_at"),
		field.Time("unregistered_at").Optional().Nillable(),
	}
}

// Indexes of Device.
func (Device) Indexes() []ent.Index {
	return []ent.Index{
		// The token is the natural key among live registrations.
		index.Fields("push_token").Unique(),
		index.Fields("account_id", "last_seen_at"),
		index.Fields("role"),
	}
}

// Notification is one message to one recipient and its delivery state.
type Notification struct{ ent.Schema }

// Fields of Notification.
func (Notification) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		// requested_by and idempotency_key identify a send per calling account.
		field.String("requested_by").Immutable(),
		field.String("idempotency_key").Immutable(),
		// kind, status, failure_reason, priority: the contract's enum names
		// without their prefix ("ALERT", "QUEUED", "NO_DEVICE", "HIGH").
		field.String("kind").Immutable(),
		field.String("status"),
		field.String("failure_reason").Default(""),
		field.String("priority").Immutable(),
		// recipient_subject, recipient_site, recipient_staff, recipient_role:
		// exactly one target is set; recipient_role names the admins step.
		field.String("recipient_subject").Default("").Immutable(),
		field.String("recipient_site").Default("").Immutable(),
		field.String("recipient_staff").Default("").Immutable(),
		field.String("recipient_role").Default("").Immutable(),
		field.String("template_code").Immutable(),
		// parameters is the typed template parameters as JSON.
		field.Text("parameters").Immutable(),
		field.String("trial_id").Default("").Immutable(),
		field.String("subject_visit_id").Default("").Immutable(),
		field.String("about_subject_uuid").Default("").Immutable(),
		field.String("source_reference").Default("").Immutable(),
		field.String("safety_alert_id").Default("").Immutable(),
		field.Int("attempt_count").Default(0),
		field.Int("requeue_count").Default(0),
		field.String("last_error").Default(""),
		field.Int("device_count").Default(0),
		field.Int("delivered_device_count").Default(0),
		field.String("cancel_reason").Default(""),
		// recipients is who the last attempt resolved as JSON (account ids), so
		// ReportNotificationOpened admits only them.
		field.Text("recipients").Default("[]"),
		field.Time("not_before").Optional().Nillable().Immutable(),
		field.Time("expires_at").Optional().Nillable().Immutable(),
		field.Time("next_attempt_at").Optional().Nillable(),
		field.Time("scheduled_for"),
		field.Time("first_sent_at").Optional().Nillable(),
		field.Time("delivered_at").Optional().Nillable(),
		field.Time("opened_at").Optional().Nillable(),
		field.Time("created_at").Immutable(),
		field.Time("updated_at"),
	}
}

// Indexes of Notification.
func (Notification) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("requested_by", "idempotency_key").Unique(),
		index.Fields("created_at", "id"),
		index.Fields("status"),
		index.Fields("subject_visit_id"),
		index.Fields("safety_alert_id"),
	}
}

// SafetyAlert is one safety alert about one subject and how far it escalated.
type SafetyAlert struct{ ent.Schema }

// Fields of SafetyAlert.
func (SafetyAlert) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("trial_id").Immutable(),
		field.String("site_id").Immutable(),
		field.String("about_subject_uuid").Immutable(),
		field.String("source_reference").Default("").Immutable(),
		field.String("template_code").Immutable(),
		field.String("priority").Immutable(),
		// status is "OPEN" or "ACKNOWLEDGED"; level the EscalationLevel name.
		field.String("status"),
		field.String("level"),
		field.Time("raised_at").Immutable(),
		field.Time("escalate_at").Optional().Nillable(),
		field.Time("acknowledged_at").Optional().Nillable(),
		field.String("acknowledged_by").Default(""),
	}
}

// Indexes of SafetyAlert.
func (SafetyAlert) Indexes() []ent.Index {
	return []ent.Index{index.Fields("status", "raised_at"), index.Fields("site_id"), index.Fields("trial_id")}
}

// EscalationStep is one send of a safety alert to one level of recipients.
type EscalationStep struct{ ent.Schema }

// Fields of EscalationStep.
func (EscalationStep) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("alert_id").Immutable(),
		field.String("level").Immutable(),
		field.Time("at").Immutable(),
		field.String("notification_id").Immutable(),
		field.Int("recipient_count"),
	}
}

// Indexes of EscalationStep.
func (EscalationStep) Indexes() []ent.Index {
	return []ent.Index{index.Fields("alert_id", "level").Unique()}
}

// Cursor is how far the reminder planner has read one trial's worklist.
type Cursor struct{ ent.Schema }

// Fields of Cursor.
func (Cursor) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // the trial id
		field.Time("updated_after"),
	}
}
