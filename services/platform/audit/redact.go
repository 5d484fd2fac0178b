package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trialhub/trialhub/services/platform/db"
)

// ErrNotFound is returned by Redact for a sequence the trail does not hold.
var ErrNotFound = errors.New("audit: no such entry")

// Redact removes personal data accidentally recorded in the entry at sequence: its
// non-empty old_value and new_value are replaced by Redacted (the only change the
// append-only triggers allow), and e, the service's record of the redaction, is
// appended in the same transaction. e.Reason is required; e.RecordID defaults to
// the redacted entry's id. The redacted entry keeps its place and hash, and the
// chain still verifies, because values enter the hash only through their digests.
func (l *Log) Redact(ctx context.Context, tx *db.Tx, sequence int64, e Event) (Entry, error) {
	if e.Reason == "" {
		return Entry{}, errors.New("audit: a redaction needs a Reason")
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT event_id FROM audit_events WHERE sequence = $1`, sequence).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: sequence %d", ErrNotFound, sequence)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("audit: redact entry %d: %w", sequence, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET
		old_value = CASE WHEN old_value = '' THEN '' ELSE $2 END,
		new_value = CASE WHEN new_value = '' THEN '' ELSE $2 END
		WHERE sequence = $1`, sequence, Redacted); err != nil {
		return Entry{}, fmt.Errorf("audit: redact entry %d: %w", sequence, err)
	}
	if e.RecordID == "" {
		e.RecordID = id
	}
	return l.Append(ctx, tx, e)
}
