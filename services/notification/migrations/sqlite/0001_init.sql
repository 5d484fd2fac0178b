-- Create "cursors" table
CREATE TABLE `cursors` (`id` text NOT NULL, `updated_after` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create "devices" table
CREATE TABLE `devices` (`id` text NOT NULL, `account_id` text NOT NULL, `role` text NOT NULL, `push_token` text NULL, `platform` text NOT NULL, `app_version` text NOT NULL, `locale` text NOT NULL, `registered_at` datetime NOT NULL, `last_seen_at` datetime NOT NULL, `unregistered_at` datetime NULL, PRIMARY KEY (`id`));
-- Create index "device_push_token" to table: "devices"
CREATE UNIQUE INDEX `device_push_token` ON `devices` (`push_token`);
-- Create index "device_account_id_last_seen_at" to table: "devices"
CREATE INDEX `device_account_id_last_seen_at` ON `devices` (`account_id`, `last_seen_at`);
-- Create index "device_role" to table: "devices"
CREATE INDEX `device_role` ON `devices` (`role`);
-- Create "escalation_steps" table
CREATE TABLE `escalation_steps` (`id` text NOT NULL, `alert_id` text NOT NULL, `level` text NOT NULL, `at` datetime NOT NULL, `notification_id` text NOT NULL, `recipient_count` integer NOT NULL, PRIMARY KEY (`id`));
-- Create index "escalationstep_alert_id_level" to table: "escalation_steps"
CREATE UNIQUE INDEX `escalationstep_alert_id_level` ON `escalation_steps` (`alert_id`, `level`);
-- Create "notifications" table
CREATE TABLE `notifications` (`id` text NOT NULL, `requested_by` text NOT NULL, `idempotency_key` text NOT NULL, `kind` text NOT NULL, `status` text NOT NULL, `failure_reason` text NOT NULL DEFAULT (''), `priority` text NOT NULL, `recipient_subject` text NOT NULL DEFAULT (''), `recipient_site` text NOT NULL DEFAULT (''), `recipient_staff` text NOT NULL DEFAULT (''), `recipient_role` text NOT NULL DEFAULT (''), `template_code` text NOT NULL, `parameters` text NOT NULL, `trial_id` text NOT NULL DEFAULT (''), `subject_visit_id` text NOT NULL DEFAULT (''), `about_subject_uuid` text NOT NULL DEFAULT (''), `source_reference` text NOT NULL DEFAULT (''), `safety_alert_id` text NOT NULL DEFAULT (''), `attempt_count` integer NOT NULL DEFAULT (0), `requeue_count` integer NOT NULL DEFAULT (0), `last_error` text NOT NULL DEFAULT (''), `device_count` integer NOT NULL DEFAULT (0), `delivered_device_count` integer NOT NULL DEFAULT (0), `cancel_reason` text NOT NULL DEFAULT (''), `recipients` text NOT NULL DEFAULT ('[]'), `not_before` datetime NULL, `expires_at` datetime NULL, `next_attempt_at` datetime NULL, `scheduled_for` datetime NOT NULL, `first_sent_at` datetime NULL, `delivered_at` datetime NULL, `opened_at` datetime NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "notification_requested_by_idempotency_key" to table: "notifications"
CREATE UNIQUE INDEX `notification_requested_by_idempotency_key` ON `notifications` (`requested_by`, `idempotency_key`);
-- Create index "notification_created_at_id" to table: "notifications"
CREATE INDEX `notification_created_at_id` ON `notifications` (`created_at`, `id`);
-- Create index "notification_status" to table: "notifications"
CREATE INDEX `notification_status` ON `notifications` (`status`);
-- Create index "notification_subject_visit_id" to table: "notifications"
CREATE INDEX `notification_subject_visit_id` ON `notifications` (`subject_visit_id`);
-- Create index "notification_safety_alert_id" to table: "notifications"
CREATE INDEX `notification_safety_alert_id` ON `notifications` (`safety_alert_id`);
-- Create "safety_alerts" table
CREATE TABLE `safety_alerts` (`id` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `about_subject_uuid` text NOT NULL, `source_reference` text NOT NULL DEFAULT (''), `template_code` text NOT NULL, `priority` text NOT NULL, `status` text NOT NULL, `level` text NOT NULL, `raised_at` datetime NOT NULL, `escalate_at` datetime NULL, `acknowledged_at` datetime NULL, `acknowledged_by` text NOT NULL DEFAULT (''), PRIMARY KEY (`id`));
-- Create index "safetyalert_status_raised_at" to table: "safety_alerts"
CREATE INDEX `safetyalert_status_raised_at` ON `safety_alerts` (`status`, `raised_at`);
-- Create index "safetyalert_site_id" to table: "safety_alerts"
CREATE INDEX `safetyalert_site_id` ON `safety_alerts` (`site_id`);
-- Create index "safetyalert_trial_id" to table: "safety_alerts"
CREATE INDEX `safetyalert_trial_id` ON `safety_alerts` (`trial_id`);
