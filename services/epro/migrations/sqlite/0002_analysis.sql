-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create index "response_trial_id_site_id_subj_dc7c7feb449f6b9bc3191f014eeb05c2" to table: "responses"
CREATE INDEX `response_trial_id_site_id_subj_dc7c7feb449f6b9bc3191f014eeb05c2` ON `responses` (`trial_id`, `site_id`, `subject_uuid`, `authored_at`, `response_id`, `revision`);
-- Create "new_subject_visits" table
CREATE TABLE `new_subject_visits` (`id` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `enrollment_id` text NOT NULL, `visit_code` text NOT NULL, `visit_name` text NOT NULL, `window_opens_at` datetime NOT NULL, `window_closes_at` datetime NOT NULL, `status` text NOT NULL, `questionnaire_ids` json NOT NULL, `trial_updated_at` datetime NOT NULL, `enrollment_date` text NOT NULL DEFAULT (''), `site_time_zone` text NOT NULL DEFAULT (''), `site_code` text NOT NULL DEFAULT (''), PRIMARY KEY (`id`));
-- Copy rows from old table "subject_visits" to new temporary table "new_subject_visits"
INSERT INTO `new_subject_visits` (`id`, `trial_id`, `site_id`, `subject_uuid`, `enrollment_id`, `visit_code`, `visit_name`, `window_opens_at`, `window_closes_at`, `status`, `questionnaire_ids`, `trial_updated_at`) SELECT `id`, `trial_id`, `site_id`, `subject_uuid`, `enrollment_id`, `visit_code`, `visit_name`, `window_opens_at`, `window_closes_at`, `status`, `questionnaire_ids`, `trial_updated_at` FROM `subject_visits`;
-- Drop "subject_visits" table after copying rows
DROP TABLE `subject_visits`;
-- Rename temporary table "new_subject_visits" to "subject_visits"
ALTER TABLE `new_subject_visits` RENAME TO `subject_visits`;
-- Create index "subjectvisit_subject_uuid_window_closes_at" to table: "subject_visits"
CREATE INDEX `subjectvisit_subject_uuid_window_closes_at` ON `subject_visits` (`subject_uuid`, `window_closes_at`);
-- Create index "subjectvisit_trial_id_site_id_visit_code" to table: "subject_visits"
CREATE INDEX `subjectvisit_trial_id_site_id_visit_code` ON `subject_visits` (`trial_id`, `site_id`, `visit_code`);
-- Create "free_text_reviews" table
CREATE TABLE `free_text_reviews` (`id` text NOT NULL, `response_id` text NOT NULL, `revision` integer NOT NULL, `link_id` text NOT NULL, `decision` text NOT NULL, `reviewer_role` text NOT NULL, `reviewed_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "freetextreview_response_id_revision" to table: "free_text_reviews"
CREATE INDEX `freetextreview_response_id_revision` ON `free_text_reviews` (`response_id`, `revision`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
