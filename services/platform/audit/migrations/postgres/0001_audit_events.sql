-- The audit trail (services/platform/audit): a hash-chained, append-only log of
-- who did what to which record, written in the transaction of the action. See
-- audit/hash.go for how hash is computed (hash_version 1).
CREATE TABLE audit_events (
    sequence           BIGINT      PRIMARY KEY CHECK (sequence >= 1),
    event_id           TEXT        NOT NULL UNIQUE,
    occurred_at        TIMESTAMPTZ NOT NULL,
    actor_id           TEXT        NOT NULL,
    actor_role         TEXT        NOT NULL,
    actor_kind         TEXT        NOT NULL,
    action             TEXT        NOT NULL,
    record_type        TEXT        NOT NULL,
    record_id          TEXT        NOT NULL,
    subject_uuid       TEXT        NOT NULL,
    field              TEXT        NOT NULL,
    old_value          TEXT        NOT NULL,
    new_value          TEXT        NOT NULL,
    old_value_digest   TEXT        NOT NULL,
    new_value_digest   TEXT        NOT NULL,
    values_redacted    BOOLEAN     NOT NULL,
    reason             TEXT        NOT NULL,
    trial_id           TEXT        NOT NULL,
    site_id            TEXT        NOT NULL,
    client_address     TEXT        NOT NULL,
    client_user_agent  TEXT        NOT NULL,
    client_app_version TEXT        NOT NULL,
    procedure          TEXT        NOT NULL,
    trace_id           TEXT        NOT NULL,
    request_id         TEXT        NOT NULL,
    hash_version       INTEGER     NOT NULL,
    previous_hash      TEXT        NOT NULL,
    hash               TEXT        NOT NULL
);
CREATE INDEX audit_events_actor    ON audit_events (actor_id, sequence);
CREATE INDEX audit_events_subject  ON audit_events (subject_uuid, sequence);
CREATE INDEX audit_events_record   ON audit_events (record_type, record_id, sequence);
CREATE INDEX audit_events_action   ON audit_events (action, sequence);
CREATE INDEX audit_events_occurred ON audit_events (occurred_at);

-- Append-only: UPDATE, DELETE and TRUNCATE are refused. The one exception is a
-- justified redaction (audit.Log.Redact): old_value and/or new_value replaced by
-- the marker '[REDACTED]' with every other column unchanged; the value digests
-- stay, so the chain still verifies.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND to_jsonb(NEW) - 'old_value' - 'new_value' = to_jsonb(OLD) - 'old_value' - 'new_value'
       AND NEW.old_value IN (OLD.old_value, '[REDACTED]')
       AND NEW.new_value IN (OLD.new_value, '[REDACTED]') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_events_append_only_rows BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_append_only_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
