-- Notes and the deliveries of their NoteAdded jobs.
CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    author     TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- One row each time a worker ran a NoteAdded job to its end: exactly-once work
-- leaves one row per note.
CREATE TABLE note_deliveries (
    note_id TEXT NOT NULL REFERENCES notes (id),
    job_id  BIGINT NOT NULL,
    worker  TEXT NOT NULL
);
