-- Modify "trials" table
ALTER TABLE "trials" ADD COLUMN "late_submission_grace_hours" integer NOT NULL DEFAULT 24;
