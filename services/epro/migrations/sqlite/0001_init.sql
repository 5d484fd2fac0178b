-- Create "questionnaires" table
CREATE TABLE `questionnaires` (`id` text NOT NULL, `url` text NOT NULL, `version` text NOT NULL, `name` text NOT NULL, `title` text NOT NULL, `status` text NOT NULL, `definition` text NOT NULL, `digest` text NOT NULL, `show_scores_to_patient` bool NOT NULL, `created_by` text NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "questionnaire_url_version" to table: "questionnaires"
CREATE UNIQUE INDEX `questionnaire_url_version` ON `questionnaires` (`url`, `version`);
-- Create index "questionnaire_url_created_at" to table: "questionnaires"
CREATE INDEX `questionnaire_url_created_at` ON `questionnaires` (`url`, `created_at`);
