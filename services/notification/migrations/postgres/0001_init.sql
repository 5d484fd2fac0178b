-- Create "cursors" table
CREATE TABLE "cursors" ("id" character varying NOT NULL, "updated_after" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create "devices" table
CREATE TABLE "devices" ("id" character varying NOT NULL, "account_id" character varying NOT NULL, "role" character varying NOT NULL, "push_token" character varying NULL, "platform" character varying NOT NULL, "app_version" character varying NOT NULL, "locale" character varying NOT NULL, "registered_at" timestamptz NOT NULL, "last_seen_at" timestamptz NOT NULL, "unregistered_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "device_account_id_last_seen_at" to table: "devices"
CREATE INDEX "device_account_id_last_seen_at" ON "devices" ("account_id", "last_seen_at");
-- Create index "device_push_token" to table: "devices"
CREATE UNIQUE INDEX "device_push_token" ON "devices" ("push_token");
-- Create index "device_role" to table: "devices"
CREATE INDEX "device_role" ON "devices" ("role");
-- Create "escalation_steps" table
CREATE TABLE "escalation_steps" ("id" character varying NOT NULL, "alert_id" character varying NOT NULL, "level" character varying NOT NULL, "at" timestamptz NOT NULL, "notification_id" character varying NOT NULL, "recipient_count" bigint NOT NULL, PRIMARY KEY ("id"));
-- Create index "escalationstep_alert_id_level" to table: "escalation_steps"
CREATE UNIQUE INDEX "escalationstep_alert_id_level" ON "escalation_steps" ("alert_id", "level");
-- Create "notifications" table
CREATE TABLE "notifications" ("id" character varying NOT NULL, "requested_by" character varying NOT NULL, "idempotency_key" character varying NOT NULL, "kind" character varying NOT NULL, "status" character varying NOT NULL, "failure_reason" character varying NOT NULL DEFAULT '', "priority" character varying NOT NULL, "recipient_subject" character varying NOT NULL DEFAULT '', "recipient_site" character varying NOT NULL DEFAULT '', "recipient_staff" character varying NOT NULL DEFAULT '', "recipient_role" character varying NOT NULL DEFAULT '', "template_code" character varying NOT NULL, "parameters" text NOT NULL, "trial_id" character varying NOT NULL DEFAULT '', "subject_visit_id" character varying NOT NULL DEFAULT '', "about_subject_uuid" character varying NOT NULL DEFAULT '', "source_reference" character varying NOT NULL DEFAULT '', "safety_alert_id" character varying NOT NULL DEFAULT '', "attempt_count" bigint NOT NULL DEFAULT 0, "requeue_count" bigint NOT NULL DEFAULT 0, "last_error" character varying NOT NULL DEFAULT '', "device_count" bigint NOT NULL DEFAULT 0, "delivered_device_count" bigint NOT NULL DEFAULT 0, "cancel_reason" character varying NOT NULL DEFAULT '', "recipients" text NOT NULL DEFAULT '[]', "not_before" timestamptz NULL, "expires_at" timestamptz NULL, "next_attempt_at" timestamptz NULL, "scheduled_for" timestamptz NOT NULL, "first_sent_at" timestamptz NULL, "delivered_at" timestamptz NULL, "opened_at" timestamptz NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "notification_created_at_id" to table: "notifications"
CREATE INDEX "notification_created_at_id" ON "notifications" ("created_at", "id");
-- Create index "notification_requested_by_idempotency_key" to table: "notifications"
CREATE UNIQUE INDEX "notification_requested_by_idempotency_key" ON "notifications" ("requested_by", "idempotency_key");
-- Create index "notification_safety_alert_id" to table: "notifications"
CREATE INDEX "notification_safety_alert_id" ON "notifications" ("safety_alert_id");
-- Create index "notification_status" to table: "notifications"
CREATE INDEX "notification_status" ON "notifications" ("status");
-- Create index "notification_subject_visit_id" to table: "notifications"
CREATE INDEX "notification_subject_visit_id" ON "notifications" ("subject_visit_id");
-- Create "safety_alerts" table
CREATE TABLE "safety_alerts" ("id" character varying NOT NULL, "trial_id" character varying NOT NULL, "site_id" character varying NOT NULL, "about_subject_uuid" character varying NOT NULL, "source_reference" character varying NOT NULL DEFAULT '', "template_code" character varying NOT NULL, "priority" character varying NOT NULL, "status" character varying NOT NULL, "level" character varying NOT NULL, "raised_at" timestamptz NOT NULL, "escalate_at" timestamptz NULL, "acknowledged_at" timestamptz NULL, "acknowledged_by" character varying NOT NULL DEFAULT '', PRIMARY KEY ("id"));
-- Create index "safetyalert_site_id" to table: "safety_alerts"
CREATE INDEX "safetyalert_site_id" ON "safety_alerts" ("site_id");
-- Create index "safetyalert_status_raised_at" to table: "safety_alerts"
CREATE INDEX "safetyalert_status_raised_at" ON "safety_alerts" ("status", "raised_at");
-- Create index "safetyalert_trial_id" to table: "safety_alerts"
CREATE INDEX "safetyalert_trial_id" ON "safety_alerts" ("trial_id");
