-- Create "questionnaires" table
CREATE TABLE "questionnaires" ("id" character varying NOT NULL, "url" character varying NOT NULL, "version" character varying NOT NULL, "name" character varying NOT NULL, "title" character varying NOT NULL, "status" character varying NOT NULL, "definition" text NOT NULL, "digest" character varying NOT NULL, "show_scores_to_patient" boolean NOT NULL, "created_by" character varying NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "questionnaire_url_created_at" to table: "questionnaires"
CREATE INDEX "questionnaire_url_created_at" ON "questionnaires" ("url", "created_at");
-- Create index "questionnaire_url_version" to table: "questionnaires"
CREATE UNIQUE INDEX "questionnaire_url_version" ON "questionnaires" ("url", "version");
