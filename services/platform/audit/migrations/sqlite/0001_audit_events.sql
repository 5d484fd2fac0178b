-- The audit trail (services/platform/audit): a hash-chained, append-only log of
-- who did what to which record, written in the transaction of the action. See
-- audit/hash.go for how hash is computed (hash_version 1).
CREATE TABLE audit_events (
    sequence           INTEGER PRIMARY KEY CHECK (sequence >= 1),
    event_id           TEXT    NOT NULL UNIQUE,
    occurred_at        INTEGER NOT NULL, -- Unix microseconds, UTC
    actor_id           TEXT    NOT NULL,
    actor_role         TEXT    NOT NULL,
    actor_kind         TEXT    NOT NULL,
    action             TEXT    NOT NULL,
    record_type        TEXT    NOT NULL,
    record_id          TEXT    NOT NULL,
    subject_uuid       TEXT    NOT NULL,
    field              TEXT    NOT NULL,
    old_value          TEXT    NOT NULL,
    new_value          TEXT    NOT NULL,
    old_value_digest   TEXT    NOT NULL,
    new_value_digest   TEXT    NOT NULL,
    values_redacted    INTEGER NOT NULL,
    reason             TEXT    NOT NULL,
    trial_id           TEXT    NOT NULL,
    site_id            TEXT    NOT NULL,
    client_address     TEXT    NOT NULL,
    client_user_agent  TEXT    NOT NULL,
    client_app_version TEXT    NOT NULL,
    procedure          TEXT    NOT NULL,
    trace_id           TEXT    NOT NULL,
    request_id         TEXT    NOT NULL,
    hash_version       INTEGER NOT NULL,
    previous_hash      TEXT    NOT NULL,
    hash               TEXT    NOT NULL
);
CREATE INDEX audit_events_actor    ON audit_events (actor_id, sequence);
CREATE INDEX audit_events_subject  ON audit_events (subject_uuid, sequence);
CREATE INDEX audit_events_record   ON audit_events (record_type, record_id, sequence);
CREATE INDEX audit_events_action   ON audit_events (action, sequence);
CREATE INDEX audit_events_occurred ON audit_events (occurred_at);

-- Append-only: DELETE and UPDATE are refused, except a justified redaction
-- (audit.Log.Redact): old_value and/or new_value replaced by '[REDACTED]' with
-- every other column unchanged.
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    NEW.sequence IS OLD.sequence AND NEW.event_id IS OLD.event_id
    AND NEW.occurred_at IS OLD.occurred_at AND NEW.actor_id IS OLD.actor_id
    AND NEW.actor_role IS OLD.actor_role AND NEW.actor_kind IS OLD.actor_kind
    AND NEW.action IS OLD.action AND NEW.record_type IS OLD.record_type
    AND NEW.record_id IS OLD.record_id AND NEW.subject_uuid IS OLD.subject_uuid
    AND NEW.field IS OLD.field
    AND NEW.old_value_digest IS OLD.old_value_digest
    AND NEW.new_value_digest IS OLD.new_value_digest
    AND NEW.values_redacted IS OLD.values_redacted AND NEW.reason IS OLD.reason
    AND NEW.trial_id IS OLD.trial_id AND NEW.site_id IS OLD.site_id
    AND NEW.client_address IS OLD.client_address
    AND NEW.client_user_agent IS OLD.client_user_agent
    AND NEW.client_app_version IS OLD.client_app_version
    AND NEW.procedure IS OLD.procedure AND NEW.trace_id IS OLD.trace_id
    AND NEW.request_id IS OLD.request_id AND NEW.hash_version IS OLD.hash_version
    AND NEW.previous_hash IS OLD.previous_hash AND NEW.hash IS OLD.hash
    AND NEW.old_value IN (OLD.old_value, '[REDACTED]')
    AND NEW.new_value IN (OLD.new_value, '[REDACTED]')
)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
