package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/request"
)

// appendLock is the PostgreSQL advisory lock key ("trialhub" in ASCII) that
// serialises appends within one database; it is held until the transaction ends.
const appendLock int64 = 0x747269616c687562

// Append records e in tx as the next entry of the trail and returns it. It fills
// the sequence, id, UTC server time, request id, procedure, client and trace id
// (request.From(ctx)), the actor when e names none (auth.CallerFrom(ctx)), and the
// hashes. The entry commits or rolls back with tx. On PostgreSQL it waits for
// concurrent appends to commit, so call it late in the transaction, and use the
// default READ COMMITTED isolation (under REPEATABLE READ a concurrent append
// fails on the unique sequence instead of forking the chain).
func (l *Log) Append(ctx context.Context, tx *db.Tx, e Event) (Entry, error) {
	if e.Action == "" || e.RecordType == "" {
		return Entry{}, errors.New("audit: an event needs an Action and a RecordType")
	}
	if e.Actor == (Actor{}) {
		e.Actor = actorFrom(ctx)
	}
	if e.OldValue == Redacted || e.NewValue == Redacted {
		e.ValuesRedacted = true
	}
	info := request.From(ctx)
	r := &row{Entry: Entry{
		Event:       e,
		ID:          uuid.NewString(),
		OccurredAt:  l.clock().UTC().Truncate(time.Microsecond),
		RequestID:   info.ID,
		Procedure:   info.Procedure,
		TraceID:     info.TraceID,
		Client:      Client{Address: info.ClientAddr, UserAgent: info.UserAgent, AppVersion: info.AppVersion},
		HashVersion: HashVersion1,
	}}
	r.oldDigest, r.newDigest = l.digest(e.OldValue), l.digest(e.NewValue)

	if tx.Dialect() == dialect.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, appendLock); err != nil {
			return Entry{}, fmt.Errorf("audit: lock the trail: %w", err)
		}
	}
	var last int64
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1`).Scan(&last, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		prev = genesis
	case err != nil:
		return Entry{}, fmt.Errorf("audit: read the head of the trail: %w", err)
	}
	r.Sequence, r.PreviousHash = last+1, prev
	r.Hash, _ = computeHash(r)

	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (`+columns+`) VALUES
		($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
		 $21, $22, $23, $24, $25, $26, $27, $28)`,
		r.Sequence, r.ID, timeArg(tx.Dialect(), r.OccurredAt), r.Actor.ID, r.Actor.Role, string(r.Actor.Kind), r.Action,
		r.RecordType, r.RecordID, r.SubjectUUID, r.Field, r.OldValue, r.NewValue, r.oldDigest,
		r.newDigest, r.ValuesRedacted, r.Reason, r.TrialID, r.SiteID, r.Client.Address,
		r.Client.UserAgent, r.Client.AppVersion, r.Procedure, r.TraceID, r.RequestID, r.HashVersion,
		r.PreviousHash, r.Hash); err != nil {
		return Entry{}, fmt.Errorf("audit: append %s on %s %s: %w", e.Action, e.RecordType, e.RecordID, err)
	}
	return r.Entry, nil
}

// actorFrom is the RPC's caller as an actor.
func actorFrom(ctx context.Context) Actor {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.Subject == "" {
		return Actor{Kind: ActorAnonymous}
	}
	kind := ActorUser
	if c.Role == authzv1.Role_ROLE_SERVICE {
		kind = ActorService
	}
	return Actor{ID: c.Subject, Role: c.Role.String(), Kind: kind}
}
