-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_trials" table
CREATE TABLE `new_trials` (`id` text NOT NULL, `protocol_code` text NOT NULL, `title` text NOT NULL, `phase` integer NOT NULL, `sponsor` text NOT NULL, `status` integer NOT NULL, `registry_ids` json NULL, `description` text NOT NULL DEFAULT (''), `current_schedule_version` integer NOT NULL DEFAULT (0), `late_submission_grace_hours` integer NOT NULL DEFAULT (24), `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Copy rows from old table "trials" to new temporary table "new_trials"
INSERT INTO `new_trials` (`id`, `protocol_code`, `title`, `phase`, `sponsor`, `status`, `registry_ids`, `description`, `current_schedule_version`, `created_at`, `updated_at`) SELECT `id`, `protocol_code`, `title`, `phase`, `sponsor`, `status`, `registry_ids`, `description`, `current_schedule_version`, `created_at`, `updated_at` FROM `trials`;
-- Drop "trials" table after copying rows
DROP TABLE `trials`;
-- Rename temporary table "new_trials" to "trials"
ALTER TABLE `new_trials` RENAME TO `trials`;
-- Create index "trials_protocol_code_key" to table: "trials"
CREATE UNIQUE INDEX `trials_protocol_code_key` ON `trials` (`protocol_code`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
