// Package schema is the ePRO service's storage model. It holds questionnaire
// definitions and, under a subject's random subject_uuid, what they answered:
// never a name, national ID, phone, device token or calendar birth date.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Questionnaire is one stored, immutable questionnaire version; only its status
// (and updated_at) ever changes.
type Questionnaire struct{ ent.Schema }

// Fields of Questionnaire.
func (Questionnaire) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("url").Immutable(),
		field.String("version").Immutable(),
		field.String("name").Immutable(),
		field.String("title").Immutable(),
		// status is the contract's QuestionnaireStatus name, e.g. "ACTIVE".
		field.String("status"),
		// definition is the version's content as the contract's Questionnaire in
		// protobuf JSON, without id, status, timestamps and author.
		field.Text("definition").Immutable(),
		// digest is questionnaire.Definition.Digest of the content: the same
		// content under the same url|version is recognised, another refused.
		field.String("digest").Immutable(),
		field.Bool("show_scores_to_patient").Immutable(),
		field.String("created_by").Immutable(),
		field.Time("created_at").Immutable(),
		field.Time("updated_at"),
	}
}

// Indexes of Questionnaire.
func (Questionnaire) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("url", "version").Unique(),
		index.Fields("url", "created_at"),
	}
}

// SubjectVisit is the local copy of one subject's planned visit, kept current
// from the trial service's worklist cursor (see visits.go), so tasks and
// submissions are checked here and keep working while the trial service is down.
type SubjectVisit struct{ ent.Schema }

// Fields of SubjectVisit.
func (SubjectVisit) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // the trial service's subject_visit_id
		field.String("trial_id"),
		field.String("site_id"),
		field.String("subject_uuid"),
		field.String("enrollment_id"),
		field.String("visit_code"),
		field.String("visit_name"),
		field.Time("window_opens_at"),
		field.Time("window_closes_at"),
		// status is the trial service's SubjectVisitStatus name, e.g. "PENDING".
		field.String("status"),
		field.Strings("questionnaire_ids"),
		// trial_updated_at is the visit's updated_at in the trial service: a copy
		// only moves forward.
		field.Time("trial_updated_at"),
		// enrollment_date (study day 1, ISO date in the site's zone), the site's
		// IANA zone and code, from the worklist: study days and site-local days
		// are counted here without calling the trial service. Empty on a copy
		// made before the worklist carried them (the poller then re-reads the
		// trial from the start, see visits.go).
		field.String("enrollment_date").Default(""),
		field.String("site_time_zone").Default(""),
		field.String("site_code").Default(""),
		// The trial's late-submission grace period in hours (Trial.late_submission_grace_hours);
		// unset for a copy made before the trial service carried it: the deployment's default then.
		field.Int32("grace_hours").Optional().Nillable(),
	}
}

// Indexes of SubjectVisit.
func (SubjectVisit) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("subject_uuid", "window_closes_at"),
		// The compliance report reads a trial's visits site by site.
		index.Fields("trial_id", "site_id", "visit_code"),
	}
}

// Response is one revision of a patient's response to one questionnaire at one
// visit; an amendment adds a revision and never changes an earlier one.
type Response struct{ ent.Schema }

// Fields of Response.
func (Response) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // response_id + "/" + revision
		field.String("response_id").Immutable(),
		field.Int("revision").Immutable(),
		field.Bool("current"),
		field.String("trial_id").Immutable(),
		field.String("site_id").Immutable(),
		field.String("subject_uuid").Immutable(),
		field.String("subject_visit_id").Immutable(),
		field.String("questionnaire_id").Immutable(),
		// status is the contract's ResponseStatus name, e.g. "COMPLETED".
		field.String("status").Immutable(),
		// answers and scores are contract messages in protobuf JSON.
		field.Text("answers").Immutable(),
		field.Text("scores").Immutable(),
		field.Strings("fired_alerts").Immutable(),
		field.Time("authored_at").Immutable(),
		field.Time("received_at").Immutable(),
		field.Bool("late").Immutable(),
		field.Bool("protocol_deviation").Immutable(),
		field.String("author_role").Immutable(),
	}
}

// Indexes of Response.
func (Response) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("response_id", "revision").Unique(),
		// One first submission per visit and questionnaire: a second device's
		// submission goes to the quarantine, and a race between two loses here.
		index.Fields("subject_visit_id", "questionnaire_id", "revision").Unique(),
		index.Fields("trial_id", "site_id", "subject_uuid"),
		// Listings and exports page in this order (keyset).
		index.Fields("trial_id", "site_id", "subject_uuid", "authored_at", "response_id", "revision"),
	}
}

// FreeTextReview is a reviewer's decision on the free text of one answer of one
// response revision; a later decision replaces the earlier one (both are on the
// audit trail, with the reason). The text itself is never changed.
type FreeTextReview struct{ ent.Schema }

// Fields of FreeTextReview.
func (FreeTextReview) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // response_id + "/" + revision + "/" + link_id
		field.String("response_id").Immutable(),
		field.Int("revision").Immutable(),
		field.String("link_id").Immutable(),
		// decision is the contract's FreeTextDecision name: "REVIEWED" or "REDACTED".
		field.String("decision"),
		field.String("reviewer_role"),
		field.Time("reviewed_at"),
	}
}

// Indexes of FreeTextReview.
func (FreeTextReview) Indexes() []ent.Index {
	return []ent.Index{index.Fields("response_id", "revision")}
}

// Quarantine is a submission refused for a reason the patient cannot fix, kept
// for the site to accept or reject.
type Quarantine struct{ ent.Schema }

// Fields of Quarantine.
func (Quarantine) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("reason").Immutable(), // QuarantineReason name, e.g. "WINDOW_CLOSED"
		field.String("state"),              // QuarantineState name
		field.String("trial_id").Immutable(),
		field.String("site_id").Immutable(),
		field.String("subject_uuid").Immutable(),
		field.String("subject_visit_id").Immutable(),
		field.String("questionnaire_id").Immutable(),
		field.Text("answers").Immutable(),
		field.Time("authored_at").Immutable(),
		field.Time("received_at").Immutable(),
		field.String("existing_response_id").Immutable(),
		field.String("response_id").Default(""),
		field.Time("resolved_at").Optional().Nillable(),
	}
}

// Indexes of Quarantine.
func (Quarantine) Indexes() []ent.Index {
	return []ent.Index{index.Fields("trial_id", "state", "received_at")}
}

// Cursor is where the worklist poller stands per trial: the updated_at up to
// which the trial service's changes are copied.
type Cursor struct{ ent.Schema }

// Fields of Cursor.
func (Cursor) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(), // the trial id
		field.Time("updated_after"),
	}
}
