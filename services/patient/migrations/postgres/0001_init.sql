-- Create "data_keys" table
CREATE TABLE "data_keys" ("id" character varying NOT NULL, "purpose" character varying NOT NULL, "wrapped" bytea NOT NULL, "master_kid" character varying NOT NULL, "created_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create "patients" table
CREATE TABLE "patients" ("id" character varying NOT NULL, "status" character varying NOT NULL, "status_before" character varying NOT NULL DEFAULT '', "mobile_index" character varying NOT NULL, "national_id_index" character varying NOT NULL, "full_name_enc" bytea NOT NULL, "national_id_enc" bytea NOT NULL, "mobile_enc" bytea NOT NULL, "national_id_country" character varying NOT NULL, "password_hash" character varying NOT NULL DEFAULT '', "activation_hash" character varying NOT NULL DEFAULT '', "activation_expires_at" timestamptz NULL, "activation_attempts" bigint NOT NULL DEFAULT 0, "invited_site_id" character varying NOT NULL DEFAULT '', "invited_trial_id" character varying NOT NULL DEFAULT '', "nickname" character varying NOT NULL DEFAULT '', "avatar_url" character varying NOT NULL DEFAULT '', "language" character varying NOT NULL DEFAULT '', "time_zone" character varying NOT NULL DEFAULT '', "profile_updated_at" timestamptz NULL, "created_at" timestamptz NOT NULL, "status_updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "patients_mobile_index_key" to table: "patients"
CREATE UNIQUE INDEX "patients_mobile_index_key" ON "patients" ("mobile_index");
-- Create index "patients_national_id_index_key" to table: "patients"
CREATE UNIQUE INDEX "patients_national_id_index_key" ON "patients" ("national_id_index");
-- Create "refresh_tokens" table
CREATE TABLE "refresh_tokens" ("id" character varying NOT NULL, "session_id" character varying NOT NULL, "created_at" timestamptz NOT NULL, "expires_at" timestamptz NOT NULL, "used_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "refreshtoken_session_id" to table: "refresh_tokens"
CREATE INDEX "refreshtoken_session_id" ON "refresh_tokens" ("session_id");
-- Create "registrations" table
CREATE TABLE "registrations" ("id" character varying NOT NULL, "mobile_index" character varying NOT NULL, "national_id_index" character varying NOT NULL, "full_name_enc" bytea NOT NULL, "national_id_enc" bytea NOT NULL, "mobile_enc" bytea NOT NULL, "national_id_country" character varying NOT NULL, "password_hash" character varying NOT NULL DEFAULT '', "code_hash" character varying NOT NULL DEFAULT '', "known" boolean NOT NULL, "attempts" bigint NOT NULL DEFAULT 0, "expires_at" timestamptz NOT NULL, "created_at" timestamptz NOT NULL, "confirmed_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create "sessions" table
CREATE TABLE "sessions" ("id" character varying NOT NULL, "account_kind" character varying NOT NULL, "account_id" character varying NOT NULL, "access_jti" character varying NOT NULL DEFAULT '', "created_at" timestamptz NOT NULL, "expires_at" timestamptz NOT NULL, "revoked_at" timestamptz NULL, "revoke_reason" character varying NOT NULL DEFAULT '', PRIMARY KEY ("id"));
-- Create index "session_account_kind_account_id" to table: "sessions"
CREATE INDEX "session_account_kind_account_id" ON "sessions" ("account_kind", "account_id");
-- Create "signing_keys" table
CREATE TABLE "signing_keys" ("id" character varying NOT NULL, "private_enc" bytea NOT NULL, "public_key" bytea NOT NULL, "master_kid" character varying NOT NULL, "created_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create "staffs" table
CREATE TABLE "staffs" ("id" character varying NOT NULL, "username" character varying NOT NULL, "display_name" character varying NOT NULL, "password_hash" character varying NOT NULL DEFAULT '', "role" character varying NOT NULL, "site_ids" jsonb NOT NULL, "trial_ids" jsonb NOT NULL, "status" character varying NOT NULL, "status_before" character varying NOT NULL DEFAULT '', "activation_hash" character varying NOT NULL DEFAULT '', "activation_expires_at" timestamptz NULL, "activation_attempts" bigint NOT NULL DEFAULT 0, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "staffs_username_key" to table: "staffs"
CREATE UNIQUE INDEX "staffs_username_key" ON "staffs" ("username");
-- Create "throttles" table
CREATE TABLE "throttles" ("id" character varying NOT NULL, "count" bigint NOT NULL, "window_start" timestamptz NOT NULL, "locked_until" timestamptz NULL, PRIMARY KEY ("id"));
