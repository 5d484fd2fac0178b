-- Create "cursors" table
CREATE TABLE `cursors` (`id` text NOT NULL, `updated_after` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create "quarantines" table
CREATE TABLE `quarantines` (`id` text NOT NULL, `reason` text NOT NULL, `state` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `subject_visit_id` text NOT NULL, `questionnaire_id` text NOT NULL, `answers` text NOT NULL, `authored_at` datetime NOT NULL, `received_at` datetime NOT NULL, `existing_response_id` text NOT NULL, `response_id` text NOT NULL DEFAULT (''), `resolved_at` datetime NULL, PRIMARY KEY (`id`));
-- Create index "quarantine_trial_id_state_received_at" to table: "quarantines"
CREATE INDEX `quarantine_trial_id_state_received_at` ON `quarantines` (`trial_id`, `state`, `received_at`);
-- Create "questionnaires" table
CREATE TABLE `questionnaires` (`id` text NOT NULL, `url` text NOT NULL, `version` text NOT NULL, `name` text NOT NULL, `title` text NOT NULL, `status` text NOT NULL, `definition` text NOT NULL, `digest` text NOT NULL, `show_scores_to_patient` bool NOT NULL, `created_by` text NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "questionnaire_url_version" to table: "questionnaires"
CREATE UNIQUE INDEX `questionnaire_url_version` ON `questionnaires` (`url`, `version`);
-- Create index "questionnaire_url_created_at" to table: "questionnaires"
CREATE INDEX `questionnaire_url_created_at` ON `questionnaires` (`url`, `created_at`);
-- Create "responses" table
CREATE TABLE `responses` (`id` text NOT NULL, `response_id` text NOT NULL, `revision` integer NOT NULL, `current` bool NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `subject_visit_id` text NOT NULL, `questionnaire_id` text NOT NULL, `status` text NOT NULL, `answers` text NOT NULL, `scores` text NOT NULL, `fired_alerts` json NOT NULL, `authored_at` datetime NOT NULL, `received_at` datetime NOT NULL, `late` bool NOT NULL, `protocol_deviation` bool NOT NULL, `author_role` text NOT NULL, PRIMARY KEY (`id`));
-- Create index "response_response_id_revision" to table: "responses"
CREATE UNIQUE INDEX `response_response_id_revision` ON `responses` (`response_id`, `revision`);
-- Create index "response_subject_visit_id_questionnaire_id_revision" to table: "responses"
CREATE UNIQUE INDEX `response_subject_visit_id_questionnaire_id_revision` ON `responses` (`subject_visit_id`, `questionnaire_id`, `revision`);
-- Create index "response_trial_id_site_id_subject_uuid" to table: "responses"
CREATE INDEX `response_trial_id_site_id_subject_uuid` ON `responses` (`trial_id`, `site_id`, `subject_uuid`);
-- Create "subject_visits" table
CREATE TABLE `subject_visits` (`id` text NOT NULL, `trial_id` text NOT NULL, `site_id` text NOT NULL, `subject_uuid` text NOT NULL, `enrollment_id` text NOT NULL, `visit_code` text NOT NULL, `visit_name` text NOT NULL, `window_opens_at` datetime NOT NULL, `window_closes_at` datetime NOT NULL, `status` text NOT NULL, `questionnaire_ids` json NOT NULL, `trial_updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "subjectvisit_subject_uuid_window_closes_at" to table: "subject_visits"
CREATE INDEX `subjectvisit_subject_uuid_window_closes_at` ON `subject_visits` (`subject_uuid`, `window_closes_at`);
