// Package idempotency makes retried writes safe on the server: the first answer to
// (method, caller, idempotency_key) is stored in the service's own database, in the
// same transaction as the write, and a retry with the same key and the same request
// gets that answer again without the write running twice.
//
//	store := idempotency.New() // keys kept 24 h
//	res, err := idempotency.Do(ctx, store, d, idempotency.KeyFor(ctx, req.GetIdempotencyKey()), req,
//		func(ctx context.Context, tx *db.Tx) (*epro.SubmitResponseResponse, error) {
//			// write through tx (ent: ent.NewClient(ent.Driver(tx.Driver())))
//		})
//
// A key reused with a different request fails with connect.CodeAlreadyExists. The
// table is created by Migrations; Purge deletes expired keys (run it periodically).
package idempotency

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/request"
)

//go:embed migrations
var migrations embed.FS

// Migrations creates the idempotency_keys table: postgres/ and sqlite/ folders of
// NNNN_name.sql files, in the kit's migration layout.
var Migrations fs.FS = sub(migrations, "migrations")

func sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded folder is fixed at build time
	}
	return s
}

// DefaultTTL is how long a key is remembered when WithTTL is not given.
const DefaultTTL = 24 * time.Hour

// Store remembers the answers to idempotent requests. It holds only settings; the
// records live in the database passed to Do, so one Store serves any number of
// goroutines.
type Store struct {
	ttl   time.Duration
	clock func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithTTL sets how long a key is remembered after its first successful use
// (default DefaultTTL, 24 h). A request with an expired key runs as new. Values
// of zero or less keep the default.
func WithTTL(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.ttl = d
		}
	}
}

// WithClock sets the clock used for expiry (default time.Now); for tests.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.clock = now
		}
	}
}

// New returns a Store with the given options.
func New(opts ...Option) *Store {
	s := &Store{ttl: DefaultTTL, clock: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// TTL is how long the store remembers a key.
func (s *Store) TTL() time.Duration { return s.ttl }

// Key names one idempotent request: the same Key and the same request body get the
// same answer. Keys of different methods or callers never collide.
type Key struct {
	// Method is the RPC, such as /trialhub.epro.v1.EproService/SubmitResponse.
	Method string
	// Caller identifies who sent the request, such as "ROLE_PATIENT:<subject_uuid>".
	Caller string
	// Key is the client-chosen idempotency_key; empty means the request is not
	// idempotent and Do only runs it.
	Key string
}

// KeyFor builds the Key of the current RPC: Method from request.From(ctx).Procedure,
// Caller from auth.CallerFrom(ctx) as "<role>:<subject>" ("anonymous" without a
// token), and the client's key.
func KeyFor(ctx context.Context, key string) Key {
	caller := "anonymous"
	if c, ok := auth.CallerFrom(ctx); ok && c.Subject != "" {
		caller = c.Role.String() + ":" + c.Subject
	}
	return Key{Method: request.From(ctx).Procedure, Caller: caller, Key: key}
}
