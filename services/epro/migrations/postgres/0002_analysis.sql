-- Create index "response_trial_id_site_id_subj_dc7c7feb449f6b9bc3191f014eeb05c2" to table: "responses"
CREATE INDEX "response_trial_id_site_id_subj_dc7c7feb449f6b9bc3191f014eeb05c2" ON "responses" ("trial_id", "site_id", "subject_uuid", "authored_at", "response_id", "revision");
-- Modify "subject_visits" table
ALTER TABLE "subject_visits" ADD COLUMN "enrollment_date" character varying NOT NULL DEFAULT '', ADD COLUMN "site_time_zone" character varying NOT NULL DEFAULT '', ADD COLUMN "site_code" character varying NOT NULL DEFAULT '';
-- Create index "subjectvisit_trial_id_site_id_visit_code" to table: "subject_visits"
CREATE INDEX "subjectvisit_trial_id_site_id_visit_code" ON "subject_visits" ("trial_id", "site_id", "visit_code");
-- Create "free_text_reviews" table
CREATE TABLE "free_text_reviews" ("id" character varying NOT NULL, "response_id" character varying NOT NULL, "revision" bigint NOT NULL, "link_id" character varying NOT NULL, "decision" character varying NOT NULL, "reviewer_role" character varying NOT NULL, "reviewed_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "freetextreview_response_id_revision" to table: "free_text_reviews"
CREATE INDEX "freetextreview_response_id_revision" ON "free_text_reviews" ("response_id", "revision");
