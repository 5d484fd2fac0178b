// Package audit is the audit trail of a TrialHub service (21 CFR 11.10(e)): a
// hash-chained, append-only log in the service's own database, written in the same
// transaction as the action it records, so an action and its audit event commit or
// roll back together.
//
//	log := audit.New(audit.WithValueKey(secret))
//	err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
//		// ... the write ...
//		_, err := log.Append(ctx, tx, audit.Event{Action: "PROFILE_UPDATED",
//			RecordType: "PATIENT_PROFILE", RecordID: id, Field: "time_zone",
//			OldValue: "Europe/Paris", NewValue: "Europe/Berlin"})
//		return err
//	})
//
// Every entry gets the next sequence number (1, 2, 3, ... with no gaps), the server's
// UTC time, the request's id, procedure, client and trace id (request.From), the
// actor (auth.CallerFrom, unless the event names one), the previous entry's hash and
// its own hash (see hash.go). Concurrent writers never fork the chain: on PostgreSQL
// appends are serialised by a transaction-scoped advisory lock, on SQLite by the
// immediate write transaction. Triggers refuse UPDATE, DELETE and TRUNCATE; nothing
// deletes entries (retention is the database's lifetime). Verify recomputes the chain
// and names the first broken link. List and Each read entries back.
//
// On PostgreSQL, run the service as a role that does not own audit_events (grant it
// SELECT, INSERT and UPDATE (old_value, new_value)), so it cannot disable the trigger.
package audit

import (
	"embed"
	"io/fs"
	"time"
)

//go:embed migrations
var migrations embed.FS

// Migrations creates the audit_events table and its append-only triggers: postgres/
// and sqlite/ folders of NNNN_name.sql files, in the kit's migration layout.
var Migrations fs.FS = sub(migrations, "migrations")

func sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded folder is fixed at build time
	}
	return s
}

// Redacted is the marker recorded instead of a value that must not be kept: a PII
// field, a secret, or a value removed later by Redact.
const Redacted = "[REDACTED]"

// Log writes and reads a service's audit trail. It holds only settings; one Log
// serves any number of goroutines.
type Log struct {
	clock    func() time.Time
	valueKey []byte
}

// Option configures a Log.
type Option func(*Log)

// WithClock sets the server clock entries are stamped with (default time.Now); it
// is read in UTC and truncated to microseconds. For tests.
func WithClock(now func() time.Time) Option {
	return func(l *Log) {
		if now != nil {
			l.clock = now
		}
	}
}

// WithValueKey sets the HMAC key of the value digests that enter the hash instead of
// old_value and new_value (default: the empty key, so anyone can recompute them).
// With a secret key, a value removed by Redact cannot be guessed back from its
// digest. The key must stay the same for the life of the trail: Verify needs it.
func WithValueKey(key []byte) Option {
	return func(l *Log) { l.valueKey = append([]byte(nil), key...) }
}

// New returns a Log with the given options.
func New(opts ...Option) *Log {
	l := &Log{clock: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// ActorKind says whether an actor is a person, a service or someone not signed in.
type ActorKind string

// The kinds of actor.
const (
	ActorUser      ActorKind = "user"
	ActorService   ActorKind = "service"
	ActorAnonymous ActorKind = "anonymous"
)

// Actor is who did what an event records, by pseudonymous id, never by name.
type Actor struct {
	// ID is a subject_uuid, a staff id or a service name; empty when anonymous.
	ID string
	// Role is the role held when acting, such as "ROLE_ADMIN"; empty when anonymous.
	Role string
	// Kind is ActorUser, ActorService or ActorAnonymous.
	Kind ActorKind
}

// Event is what a service records about one action. Action and RecordType are
// the service's own vocabulary (typically its contract's enum value names).
type Event struct {
	// Actor is who acted; the zero Actor means the RPC's caller (auth.CallerFrom),
	// or ActorAnonymous when there is none.
	Actor Actor
	// Action is what was done, such as "PROFILE_UPDATED"; required.
	Action string
	// RecordType is the kind of record acted on, such as "PATIENT_PROFILE"; required.
	RecordType string
	// RecordID is the id of the record acted on.
	RecordID string
	// SubjectUUID is the patient the event concerns, if any.
	SubjectUUID string
	// Field is the field that changed, if the event is about one field.
	Field string
	// OldValue is the field's value before the change; empty for a creation.
	OldValue string
	// NewValue is the field's value after the change; empty for a deletion.
	NewValue string
	// ValuesRedacted says OldValue and/or NewValue hold Redacted instead of the
	// value; Append sets it when either does.
	ValuesRedacted bool
	// Reason is why it was done, as the actor gave it.
	Reason string
	// TrialID and SiteID are the trial and site the action was taken in, if any.
	TrialID, SiteID string
}

// Client is where a request came from.
type Client struct {
	// Address is the client's network address.
	Address string
	// UserAgent is the client's User-Agent header.
	UserAgent string
	// AppVersion is the app name and version the client reported.
	AppVersion string
}

// Entry is one recorded event of the trail: the Event and what the log added.
type Entry struct {
	Event
	// Sequence is the entry's position: 1 for the first, then consecutive.
	Sequence int64
	// ID is the entry's unique id (a random UUID).
	ID string
	// OccurredAt is the server's UTC time of the append, to the microsecond.
	OccurredAt time.Time
	// RequestID, Procedure and TraceID identify the request that caused the event
	// (request.From); empty for work that did not start with a request.
	RequestID, Procedure, TraceID string
	// Client is where the request came from.
	Client Client
	// PreviousHash is the hash of the entry before (64 zeros for the first).
	PreviousHash string
	// Hash is this entry's hash, lower-case hex SHA-256, in format HashVersion.
	Hash string
	// HashVersion names the format Hash was computed in (HashVersion1).
	HashVersion int
}
