package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"syscall"

	"connectrpc.com/connect/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Code is the Connect code for a storage error, so a handler maps it once, at the
// edge:
//
//   - sql.ErrNoRows, an ent NotFoundError: not_found
//   - unique or primary key violation (SQLSTATE 23505, SQLITE_CONSTRAINT_UNIQUE,
//     SQLITE_CONSTRAINT_PRIMARYKEY): already_exists
//   - foreign key violation (23503, SQLITE_CONSTRAINT_FOREIGNKEY): failed_precondition
//   - serialization failure, deadlock (40001, 40P01), SQLITE_BUSY, SQLITE_LOCKED: aborted
//   - connection refused or lost, driver.ErrBadConn, sql.ErrConnDone, SQLSTATE class
//     08, shutdown or too many connections (57P01, 57P02, 57P03, 53300), and what pgx
//     reports when the server dies under a statement (io.ErrUnexpectedEOF) and on
//     the connection it left behind (pgconn.ErrConnClosed): unavailable
//   - context.DeadlineExceeded: deadline_exceeded; context.Canceled and query
//     canceled (57014): canceled
//   - an error that already is a *connect.Error: its code
//   - anything else, and nil: internal (nil is not an error to map; callers check)
//
// lib/pq reports a statement stopped by its context only as query canceled (57014),
// so a deadline met in a raw lib/pq query reads canceled; InTx and Driver add the
// context's own error, so through them a deadline is deadline_exceeded on every
// driver.
//
// It looks through wrapping (fmt.Errorf %w, errors.Join, ent's ConstraintError) and
// works for lib/pq and pgx alike: both errors report SQLSTATE through a
// SQLState() string method, so this package imports neither's error type (only
// pgx's sentinel for a closed connection).
func Code(err error) connect.Code {
	var ce *connect.Error
	switch {
	case err == nil:
		return connect.CodeInternal
	case errors.As(err, &ce):
		return ce.Code()
	case errors.Is(err, sql.ErrNoRows), isEntNotFound(err):
		return connect.CodeNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	}
	if state, ok := sqlState(err); ok {
		switch {
		case state == "23505":
			return connect.CodeAlreadyExists
		case state == "23503":
			return connect.CodeFailedPrecondition
		case state == "40001", state == "40P01":
			return connect.CodeAborted
		case state == "57014":
			return connect.CodeCanceled
		case strings.HasPrefix(state, "08"), state == "57P01", state == "57P02", state == "57P03", state == "53300":
			return connect.CodeUnavailable
		}
		return connect.CodeInternal
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return connect.CodeAlreadyExists
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return connect.CodeFailedPrecondition
		}
		switch se.Code() & 0xff { // primary code: SQLITE_BUSY_SNAPSHOT is SQLITE_BUSY
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return connect.CodeAborted
		}
		return connect.CodeInternal
	}
	var opErr *net.OpError
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &opErr) {
		return connect.CodeUnavailable
	}
	return connect.CodeInternal
}

// ConnectError returns err as a *connect.Error for a handler to return: its code is
// Code(err), its public message names only what failed ("visit plan", "subject
// enrollment") and the code, never the SQL, the driver text or the values; err is
// kept as the local cause (errors.Is/As and logs see it, the client does not). A nil
// err returns nil, and a *connect.Error is returned as it is.
//
//	if err != nil {
//		return nil, db.ConnectError(err, "enrollment")
//	}
func ConnectError(err error, what string) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := Code(err)
	var msg string
	switch code {
	case connect.CodeNotFound:
		msg = what + " not found"
	case connect.CodeAlreadyExists:
		msg = what + " already exists"
	case connect.CodeFailedPrecondition:
		msg = what + " refers to something that does not exist, or is still referred to"
	case connect.CodeAborted:
		msg = what + ": conflicting concurrent change, try again"
	case connect.CodeUnavailable:
		msg = what + ": storage unavailable, try again"
	case connect.CodeDeadlineExceeded:
		msg = what + ": deadline exceeded"
	case connect.CodeCanceled:
		msg = what + ": canceled"
	default:
		msg = what + ": internal storage error"
	}
	return connect.NewError(code, msg).WithCause(err)
}

// retryable reports whether a transaction failed only because it met another one
// (serialization failure, deadlock, busy database) and may succeed when run again.
func retryable(err error) bool {
	if state, ok := sqlState(err); ok {
		return state == "40001" || state == "40P01"
	}
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// sqlState finds a PostgreSQL SQLSTATE in err's chain: *pq.Error and
// *pgconn.PgError both have SQLState() string.
func sqlState(err error) (string, bool) {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState(), true
	}
	return "", false
}

// isEntNotFound reports whether err's chain holds the NotFoundError of a
// service's generated ent package. Every generated package declares
//
//	type NotFoundError struct{ label string }
//	func (e *NotFoundError) Error() string { return "ent: " + e.label + " not found" }
//
// with no other method, so no interface can tell it apart; we require both its
// type name and its message shape, which ent's template fixes, and so neither a
// foreign type called NotFoundError nor an error that merely says "not found"
// matches. We do not import the service's package: the kit is below it.
func isEntNotFound(err error) bool {
	for _, e := range chain(err) {
		t := reflect.TypeOf(e)
		if t.Kind() != reflect.Pointer || t.Elem().Name() != "NotFoundError" {
			continue
		}
		msg := e.Error()
		if strings.HasPrefix(msg, "ent: ") && strings.HasSuffix(msg, " not found") {
			return true
		}
	}
	return false
}

// chain lists err and everything it wraps, depth first.
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}
