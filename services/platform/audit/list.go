package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Filter selects entries; its conditions combine with AND and a zero field matches
// everything.
type Filter struct {
	// ActorID keeps entries by this actor.
	ActorID string
	// SubjectUUID keeps entries concerning this patient.
	SubjectUUID string
	// Actions keeps entries with one of these actions.
	Actions []string
	// RecordType and RecordID keep entries about records of this type / this record.
	RecordType, RecordID string
	// From keeps entries that occurred at or after it (inclusive).
	From time.Time
	// Until keeps entries that occurred before it (exclusive).
	Until time.Time
	// NewestFirst orders by descending sequence; the default is oldest first.
	NewestFirst bool
}

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// ErrInvalidPageToken is returned by List for a token it did not issue for the
// same filter (map it to connect.CodeInvalidArgument).
var ErrInvalidPageToken = errors.New("audit: invalid page token")

// List returns one page of the entries matching f, in f's order: pageSize entries
// (DefaultPageSize, 50, when 0 or less; at most MaxPageSize, 200), and the token of
// the next page, empty on the last page. pageToken is empty for the first page or a
// token List returned for the same filter; another token fails with
// ErrInvalidPageToken. Pages are keyed by sequence, so entries appended while
// paging never shift a page.
func (l *Log) List(ctx context.Context, d *db.DB, f Filter, pageSize int, pageToken string) ([]Entry, string, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pageSize = min(pageSize, MaxPageSize)
	after, err := f.decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	var out []Entry
	err = f.query(ctx, d, after, pageSize+1, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) <= pageSize {
		return out, "", nil
	}
	out = out[:pageSize]
	return out, f.token(out[pageSize-1].Sequence), nil
}

// Each calls fn with every entry matching f, in f's order, streaming from the
// database (for exports such as CSV). It stops at fn's first error and returns it.
// fn must not use d: on SQLite the one connection is busy until Each returns.
func (l *Log) Each(ctx context.Context, d *db.DB, f Filter, fn func(Entry) error) error {
	return f.query(ctx, d, 0, 0, fn)
}

// query streams the matching entries after sequence after (0: from the start) in
// f's order, at most limit of them (0: all).
func (f Filter) query(ctx context.Context, d *db.DB, after int64, limit int, fn func(Entry) error) error {
	var conds []string
	var args []any
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.SubjectUUID != "" {
		add("subject_uuid = ?", f.SubjectUUID)
	}
	if len(f.Actions) > 0 {
		vals := make([]any, len(f.Actions))
		for i, a := range f.Actions {
			vals[i] = a
		}
		add("action IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")", vals...)
	}
	if f.RecordType != "" {
		add("record_type = ?", f.RecordType)
	}
	if f.RecordID != "" {
		add("record_id = ?", f.RecordID)
	}
	if !f.From.IsZero() {
		add("occurred_at >= ?", timeArg(d.Dialect(), f.From))
	}
	if !f.Until.IsZero() {
		add("occurred_at < ?", timeArg(d.Dialect(), f.Until))
	}
	order := "ASC"
	if f.NewestFirst {
		order = "DESC"
		if after > 0 {
			add("sequence < ?", after)
		}
	} else if after > 0 {
		add("sequence > ?", after)
	}
	q := "SELECT " + columns + " FROM audit_events"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY sequence " + order
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := d.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit: list entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return fmt.Errorf("audit: read entry: %w", err)
		}
		if err := fn(r.Entry); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: list entries: %w", err)
	}
	return nil
}

// fingerprint identifies the filter and order a page token belongs to.
func (f Filter) fingerprint() string {
	h := sha256.New()
	for _, s := range []string{f.ActorID, f.SubjectUUID, strings.Join(f.Actions, "\x00"), f.RecordType, f.RecordID,
		f.From.UTC().Format(time.RFC3339Nano), f.Until.UTC().Format(time.RFC3339Nano), strconv.FormatBool(f.NewestFirst)} {
		writeField(h, s)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (f Filter) token(last int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last, 10) + "." + f.fingerprint()))
}

func (f Filter) decodeToken(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, ErrInvalidPageToken
	}
	seq, fp, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || fp != f.fingerprint() {
		return 0, ErrInvalidPageToken
	}
	return n, nil
}
