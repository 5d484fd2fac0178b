-- Create "cursors" table
CREATE TABLE "cursors" ("id" character varying NOT NULL, "updated_after" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create "quarantines" table
CREATE TABLE "quarantines" ("id" character varying NOT NULL, "reason" character varying NOT NULL, "state" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "subject_uuid" character varying NOT NULL, "subject_visit_id" character varying NOT NULL, "questionnaire_id" character varying NOT NULL, "answers" text NOT NULL, "authored_at" timestamptz NOT NULL, "received_at" timestamptz NOT NULL, "existing_response_id" character varying NOT NULL, "response_id" character varying NOT NULL DEFAULT '', "resolved_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "quarantine_trial_id_state_received_at" to table: "quarantines"
CREATE INDEX "quarantine_trial_id_state_received_at" ON "quarantines" ("trial_id", "state", "received_at");
-- Create "questionnaires" table
CREATE TABLE "questionnaires" ("id" character varying NOT NULL, "url" character varying NOT NULL, "version" character varying NOT NULL, "name" character varying NOT NULL, "title" character varying NOT NULL, "status" character varying NOT NULL, "definition" text NOT NULL, "digest" character varying NOT NULL, "show_scores_to_patient" boolean NOT NULL, "created_by" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "questionnaire_url_created_at" to table: "questionnaires"
CREATE INDEX "questionnaire_url_created_at" ON "questionnaires" ("url", "created_at");
-- Create index "questionnaire_url_version" to table: "questionnaires"
CREATE UNIQUE INDEX "questionnaire_url_version" ON "questionnaires" ("url", "version");
-- Create "responses" table
CREATE TABLE "responses" ("id" character varying NOT NULL, "response_id" character varying NOT NULL, "revision" bigint NOT NULL, "current" boolean NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "subject_uuid" character varying NOT NULL, "subject_visit_id" character varying NOT NULL, "questionnaire_id" character varying NOT NULL, "status" character varying NOT NULL, "answers" text NOT NULL, "scores" text NOT NULL, "fired_alerts" jsonb NOT NULL, "authored_at" timestamptz NOT NULL, "received_at" timestamptz NOT NULL, "late" boolean NOT NULL, "protocol_deviation" boolean NOT NULL, "author_role" character varying NOT NULL, PRIMARY KEY ("id"));
-- Create index "response_response_id_revision" to table: "responses"
CREATE UNIQUE INDEX "response_response_id_revision" ON "responses" ("response_id", "revision");
-- Create index "response_subject_visit_id_questionnaire_id_revision" to table: "responses"
CREATE UNIQUE INDEX "response_subject_visit_id_questionnaire_id_revision" ON "responses" ("subject_visit_id", "questionnaire_id", "revision");
-- Create index "response_trial_id_site_id_subject_uuid" to table: "responses"
CREATE INDEX "response_trial_id_site_id_subject_uuid" ON "responses" ("trial_id", "site_id", "subject_uuid");
-- Create "subject_visits" table
CREATE TABLE "subject_visits" ("id" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "subject_uuid" character varying NOT NULL, "enrollment_id" character varying NOT NULL, "visit_code" character varying NOT NULL, "visit_name" character varying NOT NULL, "window_opens_at" timestamptz NOT NULL, "window_closes_at" timestamptz NOT NULL, "status" character varying NOT NULL, "questionnaire_ids" jsonb NOT NULL, "trial_updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "subjectvisit_subject_uuid_window_closes_at" to table: "subject_visits"
CREATE INDEX "subjectvisit_subject_uuid_window_closes_at" ON "subject_visits" ("subject_uuid", "window_closes_at");
