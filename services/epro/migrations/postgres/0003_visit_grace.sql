-- Modify "subject_visits" table
ALTER TABLE "subject_visits" ADD COLUMN "grace_hours" integer NULL;
