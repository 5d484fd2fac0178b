package patient

import (
	"context"
	"strconv"
	"time"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/patient/ent"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/request"
)

// count adds one attempt to key in the current window and returns the count so
// far and the end of a lockout, if the key is locked. One statement, so
// concurrent attempts never lose a count.
func (s *Service) count(ctx context.Context, tx *db.Tx, key string) (int, time.Time, error) {
	now := s.now()
	var n int
	var locked *time.Time
	err := tx.QueryRowContext(ctx, `INSERT INTO throttles (id, count, window_start) VALUES ($1, 1, $2)
ON CONFLICT (id) DO UPDATE SET
  count = CASE WHEN throttles.window_start < $3 THEN 1 ELSE throttles.count + 1 END,
  window_start = CASE WHEN throttles.window_start < $3 THEN $2 ELSE throttles.window_start END
RETURNING count, locked_until`, key, now, now.Add(-s.cfg.LockoutWindow)).Scan(&n, &locked)
	if err != nil {
		return 0, time.Time{}, err
	}
	if locked != nil && locked.After(now) {
		return n, *locked, nil
	}
	return n, time.Time{}, nil
}

// lockedUntil reads a key's lockout without counting.
func (s *Service) lockedUntil(ctx context.Context, key string) (time.Time, error) {
	t, err := s.ent.Throttle.Get(ctx, key)
	if ent.IsNotFound(err) || (err == nil && (t.LockedUntil == nil || !t.LockedUntil.After(s.now()))) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, err
	}
	return *t.LockedUntil, nil
}

func (s *Service) lock(ctx context.Context, tx *db.Tx, key string, until time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE throttles SET locked_until = $2 WHERE id = $1`, key, until)
	return err
}

func (s *Service) clear(ctx context.Context, tx *db.Tx, key string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM throttles WHERE id = $1`, key)
	return err
}

// perAddress counts an attempt of action from the caller's address (kept only as
// a blind index: an address is personal data) and refuses it over the limit.
func (s *Service) perAddress(ctx context.Context, tx *db.Tx, action string) error {
	addr := request.From(ctx).ClientAddr
	n, _, err := s.count(ctx, tx, "addr:"+action+":"+s.pii.index.Of("addr", addr))
	if err != nil {
		return err
	}
	if n > s.cfg.PerAddress {
		return errThrottled
	}
	return nil
}

var errThrottled = connect.NewError(connect.CodeResourceExhausted, "too many attempts; try again later")

// admit counts one attempt of action from the caller's address, and of each
// extra key, in a transaction of its own (so a failed attempt still counts),
// and refuses the attempt when the address is over its limit or a key over max.
func (s *Service) admit(ctx context.Context, action string, max int, keys ...string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		if err := s.perAddress(ctx, tx, action); err != nil {
			return err
		}
		for _, k := range keys {
			n, locked, err := s.count(ctx, tx, action+":"+k)
			if err != nil {
				return err
			}
			if n > max || !locked.IsZero() {
				return errThrottled
			}
		}
		return nil
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
