package audit

import (
	"database/sql"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
)

// columns are audit_events' columns in the order scanRow reads them.
const columns = `sequence, event_id, occurred_at, actor_id, actor_role, actor_kind, action,
	record_type, record_id, subject_uuid, field, old_value, new_value, old_value_digest,
	new_value_digest, values_redacted, reason, trial_id, site_id, client_address,
	client_user_agent, client_app_version, procedure, trace_id, request_id, hash_version,
	previous_hash, hash`

// scanRow reads one row selected with columns.
func scanRow(s interface{ Scan(...any) error }) (*row, error) {
	var r row
	var at dbTime
	var kind string
	err := s.Scan(&r.Sequence, &r.ID, &at, &r.Actor.ID, &r.Actor.Role, &kind, &r.Action,
		&r.RecordType, &r.RecordID, &r.SubjectUUID, &r.Field, &r.OldValue, &r.NewValue, &r.oldDigest,
		&r.newDigest, &r.ValuesRedacted, &r.Reason, &r.TrialID, &r.SiteID, &r.Client.Address,
		&r.Client.UserAgent, &r.Client.AppVersion, &r.Procedure, &r.TraceID, &r.RequestID, &r.HashVersion,
		&r.PreviousHash, &r.Hash)
	if err != nil {
		return nil, err
	}
	r.Actor.Kind = ActorKind(kind)
	r.OccurredAt = at.t
	return &r, nil
}

// timeArg is how a time is stored: TIMESTAMPTZ on PostgreSQL, Unix microseconds
// (INTEGER) on SQLite, whose text times do not sort; both to the microsecond, the
// precision entries are stamped with (PostgreSQL would round a finer time).
func timeArg(dia string, t time.Time) any {
	t = t.Truncate(time.Microsecond)
	if dia == dialect.SQLite {
		return t.UnixMicro()
	}
	return t.UTC()
}

// dbTime scans either storage of a time.
type dbTime struct{ t time.Time }

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		d.t = v.UTC()
	case int64:
		d.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("audit: occurred_at: unexpected %T", src)
	}
	return nil
}

var _ sql.Scanner = (*dbTime)(nil)
