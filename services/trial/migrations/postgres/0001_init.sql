-- Create "enrollments" table
CREATE TABLE "enrollments" ("id" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "subject_uuid" character varying NOT NULL, "status" integer NOT NULL, "enrollment_date" character varying NOT NULL, "end_date" character varying NOT NULL DEFAULT '', "end_study_day" integer NOT NULL DEFAULT 0, "withdrawal_reason" integer NOT NULL DEFAULT 0, "withdrawal_text" character varying NOT NULL DEFAULT '', "schedule_version" integer NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "enrollment_trial_id_site_id" to table: "enrollments"
CREATE INDEX "enrollment_trial_id_site_id" ON "enrollments" ("trial_id", "site_id");
-- Create index "enrollment_trial_id_subject_uuid" to table: "enrollments"
CREATE UNIQUE INDEX "enrollment_trial_id_subject_uuid" ON "enrollments" ("trial_id", "subject_uuid");
-- Create "schedules" table
CREATE TABLE "schedules" ("id" character varying NOT NULL, "trial_id" character varying NOT NULL, "version" integer NOT NULL, "visits" jsonb NOT NULL, "reason" character varying NOT NULL, "policy" integer NOT NULL, "created_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "schedule_trial_id_version" to table: "schedules"
CREATE UNIQUE INDEX "schedule_trial_id_version" ON "schedules" ("trial_id", "version");
-- Create "sites" table
CREATE TABLE "sites" ("id" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_code" character varying NOT NULL, "name" character varying NOT NULL, "country_code" character varying NOT NULL, "time_zone" character varying NOT NULL, "status" integer NOT NULL, "created_at" timestamptz NOT NULL, "closed_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "site_trial_id_site_code" to table: "sites"
CREATE UNIQUE INDEX "site_trial_id_site_code" ON "sites" ("trial_id", "site_code");
-- Create "trials" table
CREATE TABLE "trials" ("id" character varying NOT NULL, "protocol_code" character varying NOT NULL, "title" character varying NOT NULL, "phase" integer NOT NULL, "sponsor" character varying NOT NULL, "status" integer NOT NULL, "registry_ids" jsonb NULL, "description" character varying NOT NULL DEFAULT '', "current_schedule_version" integer NOT NULL DEFAULT 0, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "trials_protocol_code_key" to table: "trials"
CREATE UNIQUE INDEX "trials_protocol_code_key" ON "trials" ("protocol_code");
-- Create "visits" table
CREATE TABLE "visits" ("id" character varying NOT NULL, "enrollment_id" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "subject_uuid" character varying NOT NULL, "code" character varying NOT NULL, "name" character varying NOT NULL, "study_day" integer NOT NULL, "window_before" integer NOT NULL, "window_after" integer NOT NULL, "time_zone" character varying NOT NULL, "planned_date" character varying NOT NULL, "open_date" character varying NOT NULL, "close_date" character varying NOT NULL, "opens_at" timestamptz NOT NULL, "closes_at" timestamptz NOT NULL, "status" integer NOT NULL, "completed_at" timestamptz NULL, "source_refs" jsonb NULL, "questionnaires" jsonb NOT NULL, "schedule_version" integer NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "visit_enrollment_id" to table: "visits"
CREATE INDEX "visit_enrollment_id" ON "visits" ("enrollment_id");
-- Create index "visit_trial_id_updated_at_id" to table: "visits"
CREATE INDEX "visit_trial_id_updated_at_id" ON "visits" ("trial_id", "updated_at", "id");
