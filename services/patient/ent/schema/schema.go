// Package schema is the patient service's storage model. Personal data (name,
// national ID, mobile) is stored only as AES-256-GCM ciphertext (*_enc columns)
// and looked up through keyed HMAC blind indexes (*_index columns); passwords,
// one-time codes and refresh tokens only as hashes.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Patient is a patient account and its PII vault entry; its id is the
// subject_uuid, a random UUIDv4.
type Patient struct{ ent.Schema }

// Fields of Patient.
func (Patient) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("status"),
		// status_before is the status a suspension interrupted, restored by a
		// reactivation.
		field.String("status_before").Default(""),
		field.String("mobile_index").Unique(),
		field.String("national_id_index").Unique(),
		field.Bytes("full_name_enc"),
		field.Bytes("national_id_enc"),
		field.Bytes("mobile_enc"),
		field.String("national_id_country"),
		field.String("password_hash").Default(""),
		field.String("activation_hash").Default(""),
		field.Time("activation_expires_at").Optional().Nillable(),
		field.Int("activation_attempts").Default(0),
		// The inviting site and trial (empty for self-registration); recorded, not
		// used to authorise identity reads (see identity.go).
		field.String("invited_site_id").Default(""),
		field.String("invited_trial_id").Default(""),
		field.String("nickname").Default(""),
		field.String("avatar_url").Default(""),
		field.String("language").Default(""),
		field.String("time_zone").Default(""),
		field.Time("profile_updated_at").Optional().Nillable(),
		field.Time("created_at"),
		field.Time("status_updated_at"),
	}
}

// Staff is a staff sign-in: investigator, analyst or administrator.
type Staff struct{ ent.Schema }

// Fields of Staff.
func (Staff) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("username").Unique(),
		field.String("display_name"),
		field.String("password_hash").Default(""),
		field.String("role"),
		field.Strings("site_ids"),
		field.Strings("trial_ids"),
		field.String("status"),
		field.String("status_before").Default(""),
		field.String("activation_hash").Default(""),
		field.Time("activation_expires_at").Optional().Nillable(),
		field.Int("activation_attempts").Default(0),
		field.Time("created_at"),
		field.Time("updated_at"),
	}
}

// DataKey is a data-encryption key (or the blind-index key), wrapped by the
// master key named master_kid. Rotating the master key re-wraps these rows.
type DataKey struct{ ent.Schema }

// Fields of DataKey.
func (DataKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("purpose"),
		field.Bytes("wrapped"),
		field.String("master_kid"),
		field.Time("created_at"),
	}
}

// SigningKey is an Ed25519 token signing key; the private half is encrypted
// under the master key.
type SigningKey struct{ ent.Schema }

// Fields of SigningKey.
func (SigningKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.Bytes("private_enc"),
		field.Bytes("public_key"),
		field.String("master_kid"),
		field.Time("created_at"),
	}
}

// Session is one sign-in: a family of rotated refresh tokens.
type Session struct{ ent.Schema }

// Fields of Session.
func (Session) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		// account_kind is "patient" or "staff".
		field.String("account_kind"),
		field.String("account_id"),
		// access_jti is the jti of the newest access token, so ChangePassword can
		// tell the calling session from the others.
		field.String("access_jti").Default(""),
		field.Time("created_at"),
		field.Time("expires_at"),
		field.Time("revoked_at").Optional().Nillable(),
		field.String("revoke_reason").Default(""),
	}
}

// Indexes of Session.
func (Session) Indexes() []ent.Index {
	return []ent.Index{index.Fields("account_kind", "account_id")}
}

// RefreshToken is one refresh token of a session, by its SHA-256 hash.
type RefreshToken struct{ ent.Schema }

// Fields of RefreshToken.
func (RefreshToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("session_id"),
		field.Time("created_at"),
		field.Time("expires_at"),
		field.Time("used_at").Optional().Nillable(),
	}
}

// Indexes of RefreshToken.
func (RefreshToken) Indexes() []ent.Index {
	return []ent.Index{index.Fields("session_id")}
}

// Registration is a pending self-registration, until its code is confirmed.
type Registration struct{ ent.Schema }

// Fields of Registration.
func (Registration) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.String("mobile_index"),
		field.String("national_id_index"),
		field.Bytes("full_name_enc"),
		field.Bytes("national_id_enc"),
		field.Bytes("mobile_enc"),
		field.String("national_id_country"),
		field.String("password_hash").Default(""),
		field.String("code_hash").Default(""),
		// known says the mobile already had an account: the SMS said so and no
		// code can confirm this registration.
		field.Bool("known"),
		field.Int("attempts").Default(0),
		field.Time("expires_at"),
		field.Time("created_at"),
		field.Time("confirmed_at").Optional().Nillable(),
	}
}

// Throttle counts attempts per key (an action and a blind index or client
// address) in a window, and locks the key when they exceed the limit.
type Throttle struct{ ent.Schema }

// Fields of Throttle.
func (Throttle) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").Immutable(),
		field.Int("count"),
		field.Time("window_start"),
		field.Time("locked_until").Optional().Nillable(),
	}
}
