-- Create "data_keys" table
CREATE TABLE `data_keys` (`id` text NOT NULL, `purpose` text NOT NULL, `wrapped` blob NOT NULL, `master_kid` text NOT NULL, `created_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create "patients" table
CREATE TABLE `patients` (`id` text NOT NULL, `status` text NOT NULL, `status_before` text NOT NULL DEFAULT (''), `mobile_index` text NOT NULL, `national_id_index` text NOT NULL, `full_name_enc` blob NOT NULL, `national_id_enc` blob NOT NULL, `mobile_enc` blob NOT NULL, `national_id_country` text NOT NULL, `password_hash` text NOT NULL DEFAULT (''), `activation_hash` text NOT NULL DEFAULT (''), `activation_expires_at` datetime NULL, `activation_attempts` integer NOT NULL DEFAULT (0), `invited_site_id` text NOT NULL DEFAULT (''), `invited_trial_id` text NOT NULL DEFAULT (''), `nickname` text NOT NULL DEFAULT (''), `avatar_url` text NOT NULL DEFAULT (''), `language` text NOT NULL DEFAULT (''), `time_zone` text NOT NULL DEFAULT (''), `profile_updated_at` datetime NULL, `created_at` datetime NOT NULL, `status_updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "patients_mobile_index_key" to table: "patients"
CREATE UNIQUE INDEX `patients_mobile_index_key` ON `patients` (`mobile_index`);
-- Create index "patients_national_id_index_key" to table: "patients"
CREATE UNIQUE INDEX `patients_national_id_index_key` ON `patients` (`national_id_index`);
-- Create "refresh_tokens" table
CREATE TABLE `refresh_tokens` (`id` text NOT NULL, `session_id` text NOT NULL, `created_at` datetime NOT NULL, `expires_at` datetime NOT NULL, `used_at` datetime NULL, PRIMARY KEY (`id`));
-- Create index "refreshtoken_session_id" to table: "refresh_tokens"
CREATE INDEX `refreshtoken_session_id` ON `refresh_tokens` (`session_id`);
-- Create "registrations" table
CREATE TABLE `registrations` (`id` text NOT NULL, `mobile_index` text NOT NULL, `national_id_index` text NOT NULL, `full_name_enc` blob NOT NULL, `national_id_enc` blob NOT NULL, `mobile_enc` blob NOT NULL, `national_id_country` text NOT NULL, `password_hash` text NOT NULL DEFAULT (''), `code_hash` text NOT NULL DEFAULT (''), `known` bool NOT NULL, `attempts` integer NOT NULL DEFAULT (0), `expires_at` datetime NOT NULL, `created_at` datetime NOT NULL, `confirmed_at` datetime NULL, PRIMARY KEY (`id`));
-- Create "sessions" table
CREATE TABLE `sessions` (`id` text NOT NULL, `account_kind` text NOT NULL, `account_id` text NOT NULL, `access_jti` text NOT NULL DEFAULT (''), `created_at` datetime NOT NULL, `expires_at` datetime NOT NULL, `revoked_at` datetime NULL, `revoke_reason` text NOT NULL DEFAULT (''), PRIMARY KEY (`id`));
-- Create index "session_account_kind_account_id" to table: "sessions"
CREATE INDEX `session_account_kind_account_id` ON `sessions` (`account_kind`, `account_id`);
-- Create "signing_keys" table
CREATE TABLE `signing_keys` (`id` text NOT NULL, `private_enc` blob NOT NULL, `public_key` blob NOT NULL, `master_kid` text NOT NULL, `created_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create "staffs" table
CREATE TABLE `staffs` (`id` text NOT NULL, `username` text NOT NULL, `display_name` text NOT NULL, `password_hash` text NOT NULL DEFAULT (''), `role` text NOT NULL, `site_ids` json NOT NULL, `trial_ids` json NOT NULL, `status` text NOT NULL, `status_before` text NOT NULL DEFAULT (''), `activation_hash` text NOT NULL DEFAULT (''), `activation_expires_at` datetime NULL, `activation_attempts` integer NOT NULL DEFAULT (0), `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "staffs_username_key" to table: "staffs"
CREATE UNIQUE INDEX `staffs_username_key` ON `staffs` (`username`);
-- Create "throttles" table
CREATE TABLE `throttles` (`id` text NOT NULL, `count` integer NOT NULL, `window_start` datetime NOT NULL, `locked_until` datetime NULL, PRIMARY KEY (`id`));
