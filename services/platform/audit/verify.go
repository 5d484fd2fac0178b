package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Break says how the chain was found broken.
type Break string

// The kinds of break Verify reports; the empty Break means intact.
const (
	// BreakHashMismatch: an entry's content no longer matches its hash (it was
	// altered), a value no longer matches its digest, or its hash_version is unknown.
	BreakHashMismatch Break = "HASH_MISMATCH"
	// BreakPreviousHashMismatch: an entry's previous_hash is not the hash of the
	// entry before it (one was replaced, inserted or reordered, or previous_hash
	// was altered).
	BreakPreviousHashMismatch Break = "PREVIOUS_HASH_MISMATCH"
	// BreakSequenceGap: a sequence number is missing (an entry was deleted).
	BreakSequenceGap Break = "SEQUENCE_GAP"
)

// Range limits Verify to sequences From to To, both inclusive; zero From means the
// first entry, zero To the newest; a To beyond the newest entry means the newest.
type Range struct{ From, To int64 }

// ErrOutOfRange is returned by Verify when Range.From is beyond the newest entry
// (map it to connect.CodeOutOfRange).
var ErrOutOfRange = errors.New("audit: verification starts beyond the newest entry")

// Report is the outcome of Verify.
type Report struct {
	// Intact is true when every checked entry matches its hash, links to the one
	// before it and no sequence number is missing.
	Intact bool
	// Checked is how many entries were checked (up to and including a break).
	Checked int64
	// FirstSequence and LastSequence are the first and last sequence checked.
	FirstSequence, LastSequence int64
	// FirstBroken is the sequence of the first broken entry (for a gap: the first
	// missing number); 0 when intact.
	FirstBroken int64
	// Kind is how the chain breaks there; empty when intact.
	Kind Break
	// Detail explains the break (expected and found values); empty when intact.
	Detail string
	// HeadHash is the hash of the last entry checked: when intact, record it outside
	// the database to anchor the chain against wholesale rewriting (which no chain
	// can detect by itself, nor the removal of the newest entries).
	HeadHash string
	// VerifiedAt is when the verification ran (UTC, server clock).
	VerifiedAt time.Time
}

// Verify recomputes the hash chain over r (the whole trail for Range{}) in sequence
// order and reports whether it is intact or where it first breaks. Checking stops at
// the first break. A trail without entries is intact. An entry's checks run in this
// order: its sequence follows the previous one (else SEQUENCE_GAP), its
// previous_hash is the previous entry's hash (else PREVIOUS_HASH_MISMATCH), and its
// values and content match their digests and hash (else HASH_MISMATCH). Values
// equal to Redacted are not checked against their digests.
func (l *Log) Verify(ctx context.Context, d *db.DB, r Range) (Report, error) {
	if r.From < 0 || r.To < 0 || (r.To > 0 && r.To < r.From) {
		return Report{}, fmt.Errorf("audit: verify: invalid range %d..%d", r.From, r.To)
	}
	rep := Report{VerifiedAt: l.clock().UTC()}
	from := max(r.From, 1)
	prev := genesis
	if from > 1 {
		err := d.SQL().QueryRowContext(ctx, `SELECT hash FROM audit_events WHERE sequence = $1`, from-1).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			prev = ""
		} else if err != nil {
			return Report{}, fmt.Errorf("audit: verify: read entry %d: %w", from-1, err)
		}
	}
	var newest int64
	if err := d.SQL().QueryRowContext(ctx, `SELECT COALESCE(MAX(sequence), 0) FROM audit_events`).Scan(&newest); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	if r.From > 0 && r.From > newest {
		return Report{}, fmt.Errorf("%w: from %d, newest %d", ErrOutOfRange, r.From, newest)
	}
	to := newest
	if r.To > 0 {
		to = min(r.To, newest)
	}
	rep.FirstSequence = from
	if newest == 0 {
		rep.FirstSequence = 0
	}
	if prev == "" {
		rep.FirstBroken, rep.Kind = from-1, BreakSequenceGap
		rep.Detail = fmt.Sprintf("entry %d, before the range, is missing", from-1)
		return rep, nil
	}
	rows, err := d.SQL().QueryContext(ctx,
		`SELECT `+columns+` FROM audit_events WHERE sequence >= $1 AND sequence <= $2 ORDER BY sequence`, from, to)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	want := from
	for rows.Next() {
		e, err := scanRow(rows)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: read entry: %w", err)
		}
		rep.Checked++
		rep.LastSequence = e.Sequence
		if kind, detail := l.check(e, want, prev); kind != "" {
			rep.FirstBroken, rep.Kind, rep.Detail = want, kind, detail
			if kind != BreakSequenceGap {
				rep.FirstBroken = e.Sequence
			}
			return rep, nil
		}
		prev, want = e.Hash, e.Sequence+1
		rep.HeadHash = e.Hash
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	rep.Intact = true
	return rep, nil
}

// check returns how e breaks the chain, given the sequence and previous hash it
// must have, or "" when it does not.
func (l *Log) check(e *row, want int64, prev string) (Break, string) {
	if e.Sequence != want {
		return BreakSequenceGap, fmt.Sprintf("expected entry %d, found entry %d", want, e.Sequence)
	}
	if e.PreviousHash != prev {
		return BreakPreviousHashMismatch, fmt.Sprintf("entry %d: previous_hash is %s, the hash of entry %d is %s", e.Sequence, e.PreviousHash, e.Sequence-1, prev)
	}
	if e.OldValue != Redacted && l.digest(e.OldValue) != e.oldDigest {
		return BreakHashMismatch, fmt.Sprintf("entry %d: old_value does not match its digest", e.Sequence)
	}
	if e.NewValue != Redacted && l.digest(e.NewValue) != e.newDigest {
		return BreakHashMismatch, fmt.Sprintf("entry %d: new_value does not match its digest", e.Sequence)
	}
	got, ok := computeHash(e)
	if !ok {
		return BreakHashMismatch, fmt.Sprintf("entry %d: unknown hash_version %d", e.Sequence, e.HashVersion)
	}
	if got != e.Hash {
		return BreakHashMismatch, fmt.Sprintf("entry %d: content hashes to %s, stored hash is %s", e.Sequence, got, e.Hash)
	}
	return "", ""
}
