package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Do runs fn in a transaction on d at most once per key and request.
//
//   - The first request with a key runs fn; when fn returns without error, its
//     answer is stored with the key in the same transaction, so the write and the
//     record commit or roll back together.
//   - A later request with the same key and the same request (deterministic proto
//     encoding of req, idempotency_key field included, which is the same by
//     definition) gets the stored answer, unmarshaled into a fresh Res; fn does not
//     run.
//   - The same key with a different request fails with connect.CodeAlreadyExists.
//   - Concurrent duplicates wait for the first to finish: on PostgreSQL the claim
//     row's unique index blocks them until it commits; SQLite runs one write
//     transaction at a time.
//   - When fn fails, nothing is stored and its error is returned as is; a retry
//     runs fn again.
//   - A key older than the store's TTL counts as new.
//   - An empty key.Key stores nothing: fn just runs in a transaction.
func Do[Res proto.Message](ctx context.Context, s *Store, d *db.DB, key Key, req proto.Message,
	fn func(ctx context.Context, tx *db.Tx) (Res, error)) (Res, error) {
	var res Res
	if key.Key == "" {
		err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
			var err error
			res, err = fn(ctx, tx)
			return err
		})
		return res, err
	}
	hash, err := requestHash(req)
	if err != nil {
		return res, err
	}
	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		stored, claimed, err := s.claim(ctx, tx, key, hash)
		if err != nil {
			return err
		}
		if !claimed {
			if !bytes.Equal(stored.hash, hash) {
				return connect.Errorf(connect.CodeAlreadyExists,
					"idempotency_key %q was already used with a different request; use a new idempotency_key for a new request", key.Key)
			}
			var zero Res
			fresh := zero.ProtoReflect().New().Interface().(Res)
			if err := proto.Unmarshal(stored.response, fresh); err != nil {
				return fmt.Errorf("idempotency: decode stored answer for %s: %w", key.Method, err)
			}
			res = fresh
			return nil
		}
		out, err := fn(ctx, tx)
		if err != nil {
			return err
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(out)
		if err != nil {
			return fmt.Errorf("idempotency: encode answer for %s: %w", key.Method, err)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE idempotency_keys SET response = $4 WHERE method = $1 AND caller = $2 AND key = $3`,
			key.Method, key.Caller, key.Key, b); err != nil {
			return fmt.Errorf("idempotency: store answer for %s: %w", key.Method, err)
		}
		res = out
		return nil
	})
	if err != nil {
		var zero Res
		return zero, err
	}
	return res, nil
}

type record struct {
	hash     []byte
	response []byte
}

// claim forgets an expired record of key, then inserts a claim row for it. It
// reports claimed when the row is ours (fn must run), otherwise the record that
// another request stored first.
func (s *Store) claim(ctx context.Context, tx *db.Tx, key Key, hash []byte) (record, bool, error) {
	now := s.clock()
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM idempotency_keys WHERE method = $1 AND caller = $2 AND key = $3 AND expires_us <= $4`,
		key.Method, key.Caller, key.Key, now.UnixMicro()); err != nil {
		return record{}, false, fmt.Errorf("idempotency: forget expired key for %s: %w", key.Method, err)
	}
	r, err := tx.ExecContext(ctx,
		`INSERT INTO idempotency_keys (method, caller, key, request_hash, response, created_us, expires_us)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (method, caller, key) DO NOTHING`,
		key.Method, key.Caller, key.Key, hash, []byte{}, now.UnixMicro(), now.Add(s.ttl).UnixMicro())
	if err != nil {
		return record{}, false, fmt.Errorf("idempotency: claim key for %s: %w", key.Method, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return record{}, false, fmt.Errorf("idempotency: claim key for %s: %w", key.Method, err)
	}
	if n == 1 {
		return record{}, true, nil
	}
	var rec record
	err = tx.QueryRowContext(ctx,
		`SELECT request_hash, response FROM idempotency_keys WHERE method = $1 AND caller = $2 AND key = $3`,
		key.Method, key.Caller, key.Key).Scan(&rec.hash, &rec.response)
	if errors.Is(err, sql.ErrNoRows) {
		// Purged between our insert and this read: rare, and safe to retry.
		return record{}, false, connect.NewError(connect.CodeAborted, "idempotency record changed concurrently; retry the request")
	}
	if err != nil {
		return record{}, false, fmt.Errorf("idempotency: read stored answer for %s: %w", key.Method, err)
	}
	return rec, false, nil
}

// requestHash is SHA-256 over the deterministic proto encoding of req.
func requestHash(req proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("idempotency: encode request: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// Purge deletes the records whose keys have expired and returns how many it
// deleted. Run it periodically; Do ignores expired records either way.
func (s *Store) Purge(ctx context.Context, d *db.DB) (int64, error) {
	r, err := d.SQL().ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_us <= $1`, s.clock().UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("idempotency: purge expired keys: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("idempotency: purge expired keys: %w", err)
	}
	return n, nil
}
