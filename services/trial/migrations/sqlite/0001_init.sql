-- Create "enrollments" table
CREATE TABLE `enrollments` (`id` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `status` integer NOT NULL, `enrollment_date` text NOT NULL, `end_date` text NOT NULL DEFAULT (''), `end_study_day` integer NOT NULL DEFAULT (0), `withdrawal_reason` integer NOT NULL DEFAULT (0), `withdrawal_text` text NOT NULL DEFAULT (''), `schedule_version` integer NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "enrollment_trial_id_subject_uuid" to table: "enrollments"
CREATE UNIQUE INDEX `enrollment_trial_id_subject_uuid` ON `enrollments` (`trial_id`, `subject_uuid`);
-- Create index "enrollment_trial_id_site_id" to table: "enrollments"
CREATE INDEX `enrollment_trial_id_site_id` ON `enrollments` (`trial_id`, `site_id`);
-- Create "schedules" table
CREATE TABLE `schedules` (`id` text NOT NULL, `trial_id` text NOT NULL, `version` integer NOT NULL, `visits` json NOT NULL, `reason` text NOT NULL, `policy` integer NOT NULL, `created_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "schedule_trial_id_version" to table: "schedules"
CREATE UNIQUE INDEX `schedule_trial_id_version` ON `schedules` (`trial_id`, `version`);
-- Create "sites" table
CREATE TABLE `sites` (`id` text NOT NULL, `trial_id` text NOT NULL, `site_code` text NOT NULL, `name` text NOT NULL, `country_code` text NOT NULL, `time_zone` text NOT NULL, `status` integer NOT NULL, `created_at` datetime NOT NULL, `closed_at` datetime NULL, PRIMARY KEY (`id`));
-- Create index "site_trial_id_site_code" to table: "sites"
CREATE UNIQUE INDEX `site_trial_id_site_code` ON `sites` (`trial_id`, `site_code`);
-- Create "trials" table
CREATE TABLE `trials` (`id` text NOT NULL, `protocol_code` text NOT NULL, `title` text NOT NULL, `phase` integer NOT NULL, `sponsor` text NOT NULL, `status` integer NOT NULL, `registry_ids` json NULL, `description` text NOT NULL DEFAULT (''), `current_schedule_version` integer NOT NULL DEFAULT (0), `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "trials_protocol_code_key" to table: "trials"
CREATE UNIQUE INDEX `trials_protocol_code_key` ON `trials` (`protocol_code`);
-- Create "visits" table
CREATE TABLE `visits` (`id` text NOT NULL, `enrollment_id` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `code` text NOT NULL, `name` text NOT NULL, `study_day` integer NOT NULL, `window_before` integer NOT NULL, `window_after` integer NOT NULL, `time_zone` text NOT NULL, `planned_date` text NOT NULL, `open_date` text NOT NULL, `close_date` text NOT NULL, `opens_at` datetime NOT NULL, `closes_at` datetime NOT NULL, `status` integer NOT NULL, `completed_at` datetime NULL, `source_refs` json NULL, `questionnaires` json NOT NULL, `schedule_version` integer NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "visit_enrollment_id" to table: "visits"
CREATE INDEX `visit_enrollment_id` ON `visits` (`enrollment_id`);
-- Create index "visit_trial_id_updated_at_id" to table: "visits"
CREATE INDEX `visit_trial_id_updated_at_id` ON `visits` (`trial_id`, `updated_at`, `id`);
