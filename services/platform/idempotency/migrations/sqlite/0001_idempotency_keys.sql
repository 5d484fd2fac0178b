-- Server-side idempotency records (services/platform/idempotency): one row per
-- (method, caller, key), written in the same transaction as the write it guards.
CREATE TABLE idempotency_keys (
    method       TEXT    NOT NULL,
    caller       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    response     BLOB    NOT NULL,
    created_us   INTEGER NOT NULL, -- Unix microseconds, UTC
    expires_us   INTEGER NOT NULL, -- Unix microseconds, UTC
    PRIMARY KEY (method, caller, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_us);
