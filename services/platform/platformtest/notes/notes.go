// Package notes is a service that exists only for tests: the smallest TrialHub
// service with the whole anatomy the kit gives every real one. It is mounted like
// any service (platform.Service), has versioned migrations per dialect, writes a
// row, its audit event, its idempotency record and a River job in one transaction,
// and works the job in the background. The kit's tests run it on PostgreSQL and on
// SQLite; a new service can be read against it.
package notes

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"google.golang.org/protobuf/types/known/structpb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/jobs"
)

//go:embed migrations
var migrations embed.FS

// Service returns the notes service as the kit mounts it. worker names this
// process in note_deliveries, so a test with two replicas sees who did the work.
func Service(worker string) platform.Service {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return platform.Service{
		Name:       "notes",
		Migrations: sub,
		Mount: func(_ context.Context, m *platform.Mount) error {
			s := &service{db: m.DB, jobs: m.Jobs, audit: m.Audit, idem: m.Idempotency}
			m.RPC().Register(
				connect.Method{Spec: Spec(AddNoteProcedure), Handler: s.addNote},
				connect.Method{Spec: Spec(CountNotesProcedure), Handler: s.countNotes},
			)
			river.AddWorker(m.Workers, &noteAddedWorker{db: m.DB, worker: worker})
			return nil
		},
		Seed: seed,
	}
}

// seed adds a demo note through the API, as every service seeds the dev stack.
// The idempotency key makes a restart within the key's lifetime add nothing.
func seed(ctx context.Context, s *platform.Seeder) error {
	c, err := s.Client(auth.Caller{Subject: "seed", Role: authzv1.Role_ROLE_ADMIN})
	if err != nil {
		return err
	}
	req, err := structpb.NewStruct(map[string]any{"text": "a note from the seed", "idempotency_key": "seed-note-1"})
	if err != nil {
		return err
	}
	if err := c.CallUnary(ctx, Spec(AddNoteProcedure), req, &structpb.Struct{}); err != nil {
		return fmt.Errorf("add the demo note: %w", err)
	}
	_, err = fmt.Fprintln(s.Out, "  notes:      a demo note")
	return err
}

type service struct {
	db    *db.DB
	jobs  *jobs.Queue
	audit *audit.Log
	idem  *idempotency.Store
}

// addNote writes the note, its audit event, its idempotency record and its
// NoteAdded job in one transaction; "rollback": true makes the handler fail after
// all of them were written, so the test sees that none of them stays.
func (s *service) addNote(ctx context.Context, _ connect.Spec, stream connect.ServerStream) error {
	req := &structpb.Struct{}
	if err := stream.Receive(req); err != nil {
		return err
	}
	fields := req.GetFields()
	text := fields["text"].GetStringValue()
	if text == "" {
		return connect.NewError(connect.CodeInvalidArgument, "text: value is required")
	}
	caller, _ := auth.CallerFrom(ctx)
	key := idempotency.KeyFor(ctx, fields["idempotency_key"].GetStringValue())
	res, err := idempotency.Do(ctx, s.idem, s.db, key, req, func(ctx context.Context, tx *db.Tx) (*structpb.Struct, error) {
		id := uuid.NewString()
		if _, err := tx.ExecContext(ctx, `INSERT INTO notes (id, author, text, created_at) VALUES ($1, $2, $3, $4)`,
			id, caller.Subject, text, time.Now().UTC()); err != nil {
			return nil, fmt.Errorf("insert note: %w", err)
		}
		if _, err := s.audit.Append(ctx, tx, audit.Event{Action: "NOTE_ADDED", RecordType: "NOTE", RecordID: id, Field: "text", NewValue: text}); err != nil {
			return nil, err
		}
		if _, err := s.jobs.InsertTx(ctx, tx, NoteAdded{NoteID: id, Fail: fields["fail_job"].GetBoolValue()}, nil); err != nil {
			return nil, fmt.Errorf("enqueue NoteAdded: %w", err)
		}
		if fields["rollback"].GetBoolValue() {
			return nil, connect.NewError(connect.CodeFailedPrecondition, "rolled back as the request asked")
		}
		return structpb.NewStruct(map[string]any{"id": id, "text": text})
	})
	if err != nil {
		return db.ConnectError(err, "note")
	}
	return stream.Send(res)
}

func (s *service) countNotes(ctx context.Context, _ connect.Spec, stream connect.ServerStream) error {
	if err := stream.Receive(&structpb.Struct{}); err != nil {
		return err
	}
	var notes, deliveries int
	row := s.db.SQL().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM notes), (SELECT COUNT(*) FROM note_deliveries)`)
	if err := row.Scan(&notes, &deliveries); err != nil {
		return db.ConnectError(err, "notes")
	}
	res, err := structpb.NewStruct(map[string]any{"notes": notes, "deliveries": deliveries})
	if err != nil {
		return err
	}
	return stream.Send(res)
}

// NoteAdded is the job a new note enqueues in its transaction.
type NoteAdded struct {
	NoteID string `json:"note_id"`
	// Fail makes every attempt fail, so the job ends discarded.
	Fail bool `json:"fail"`
}

// Kind implements river.JobArgs.
func (NoteAdded) Kind() string { return "notes.note_added" }

type noteAddedWorker struct {
	river.WorkerDefaults[NoteAdded]
	db     *db.DB
	worker string
}

// ErrAlwaysFails is what a NoteAdded job with Fail set returns on every attempt.
var ErrAlwaysFails = errors.New("this note's job always fails")

func (w *noteAddedWorker) Work(ctx context.Context, job *river.Job[NoteAdded]) error {
	if job.Args.Fail {
		return fmt.Errorf("attempt %d: %w", job.Attempt, ErrAlwaysFails)
	}
	_, err := w.db.SQL().ExecContext(ctx, `INSERT INTO note_deliveries (note_id, job_id, worker) VALUES ($1, $2, $3)`,
		job.Args.NoteID, job.ID, w.worker)
	return err
}
