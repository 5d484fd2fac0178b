-- Add column "grace_hours" to table: "subject_visits"
ALTER TABLE `subject_visits` ADD COLUMN `grace_hours` integer NULL;
