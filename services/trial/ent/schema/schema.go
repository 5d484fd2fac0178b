// Package schema is the trial service's ent schema: trials, sites, visit
// schedule versions, enrollments and subject visits. Calendar dates are stored
// as local ISO dates with the site's IANA zone beside them; the UTC instants of
// a window are derived from them (kept for queries and recomputed on every
// write), never stored alone.
package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// RegistryID is a trial's number in one public register.
type RegistryID struct {
	Registry string `json:"registry"`
	ID       string `json:"id"`
}

// QuestionnaireRef names a questionnaire version by id or by URL.
type QuestionnaireRef struct {
	ID      string `json:"id,omitempty"`
	URL     string `json:"url,omitempty"`
	Version string `json:"version"`
}

// VisitDef is one visit of a schedule version.
type VisitDef struct {
	Code           string             `json:"code"`
	Name           string             `json:"name"`
	StudyDay       int                `json:"study_day"`
	Before         int                `json:"before"`
	After          int                `json:"after"`
	Questionnaires []QuestionnaireRef `json:"questionnaires"`
}

func id() ent.Field { return field.String("id").Immutable().NotEmpty() }

func now() ent.Field { return field.Time("created_at").Immutable().Default(time.Now) }

// Trial holds the schema definition for a trial.
type Trial struct{ ent.Schema }

// Fields of a trial.
func (Trial) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("protocol_code").Unique().NotEmpty(),
		field.String("title"),
		field.Int32("phase"),
		field.String("sponsor"),
		field.Int32("status"),
		field.JSON("registry_ids", []RegistryID{}).Optional(),
		field.String("description").Default(""),
		field.Int32("current_schedule_version").Default(0),
		// Hours after a window closes that ePRO still accepts a response authored in it.
		field.Int32("late_submission_grace_hours").Default(24),
		now(),
		field.Time("updated_at"),
	}
}

// Site holds the schema definition for a site.
type Site struct{ ent.Schema }

// Fields of a site.
func (Site) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("trial_id").Immutable(),
		field.String("site_code").Immutable(),
		field.String("name"),
		field.String("country_code"),
		field.String("time_zone"),
		field.Int32("status"),
		now(),
		field.Time("closed_at").Optional().Nillable(),
	}
}

// Indexes of a site.
func (Site) Indexes() []ent.Index {
	return []ent.Index{index.Fields("trial_id", "site_code").Unique()}
}

// Schedule holds one immutable visit schedule version of a trial.
type Schedule struct{ ent.Schema }

// Fields of a schedule version.
func (Schedule) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("trial_id").Immutable(),
		field.Int32("version").Immutable(),
		field.JSON("visits", []VisitDef{}).Immutable(),
		field.String("reason").Immutable(),
		field.Int32("policy").Immutable(),
		now(),
	}
}

// Indexes of a schedule version.
func (Schedule) Indexes() []ent.Index {
	return []ent.Index{index.Fields("trial_id", "version").Unique()}
}

// Enrollment holds one subject in one trial.
type Enrollment struct{ ent.Schema }

// Fields of an enrollment.
func (Enrollment) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("trial_id").Immutable(),
		field.String("site_id").Immutable(),
		field.String("subject_uuid").Immutable(),
		field.Int32("status"),
		field.String("enrollment_date").Immutable(),
		field.String("end_date").Default(""),
		field.Int32("end_study_day").Default(0),
		field.Int32("withdrawal_reason").Default(0),
		field.String("withdrawal_text").Default(""),
		field.Int32("schedule_version"),
		now(),
		field.Time("updated_at"),
	}
}

// Indexes of an enrollment: a subject is enrolled once per trial.
func (Enrollment) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("trial_id", "subject_uuid").Unique(),
		index.Fields("trial_id", "site_id"),
	}
}

// Visit holds one planned visit of one enrollment.
type Visit struct{ ent.Schema }

// Fields of a planned visit. status is the stored state (PENDING, COMPLETED,
// CANCELLED); MISSED is PENDING after closes_at, computed when read.
func (Visit) Fields() []ent.Field {
	return []ent.Field{
		id(),
		field.String("enrollment_id").Immutable(),
		field.String("trial_id").Immutable(),
		field.String("site_id").Immutable(),
		field.String("subject_uuid").Immutable(),
		field.String("code").Immutable(),
		field.String("name"),
		field.Int32("study_day"),
		field.Int32("window_before"),
		field.Int32("window_after"),
		field.String("time_zone"),
		field.String("planned_date"),
		field.String("open_date"),
		field.String("close_date"),
		field.Time("opens_at"),
		field.Time("closes_at"),
		field.Int32("status"),
		field.Time("completed_at").Optional().Nillable(),
		field.Strings("source_refs").Optional(),
		field.JSON("questionnaires", []QuestionnaireRef{}),
		field.Int32("schedule_version"),
		field.Time("updated_at"),
	}
}

// Indexes of a planned visit: a plan by enrollment, the worklist by trial and
// cursor.
func (Visit) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("enrollment_id"),
		index.Fields("trial_id", "updated_at", "id"),
	}
}
