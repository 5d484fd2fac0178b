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
