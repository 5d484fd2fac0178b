package contract_test

import (
	"regexp"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Identifiers used across the examples (random UUIDv4s).
const (
	subjectID       = "5f0c7a3e-8b1d-4c2a-9e6f-1a2b3c4d5e6f"
	otherSubjectID  = "6a1d8b4f-9c2e-4d3b-8f70-2b3c4d5e6f70"
	trialID         = "0b9e3f6a-2c4d-4e8f-a1b2-c3d4e5f60718"
	siteID          = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	visitID         = "a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	questionnaireID = "e2d4c6b8-a0f1-4e3d-9c5b-7a8f6e4d2c1b"
	enrollmentID    = "9d8c7b6a-5f4e-4d3c-b2a1-0f9e8d7c6b5a"
	responseID      = "4b3a2f1e-0d9c-4b8a-9f7e-6d5c4b3a2f1e"
	deviceID        = "c0ffee00-1234-4abc-8def-0123456789ab"
	notificationID  = "1e2d3c4b-5a69-4788-97a6-b5c4d3e2f100"
	staffID         = "2a4c6e8f-1b3d-4f5a-8c7e-9d0b1a2c3e4f"
	registrationID  = "8e7d6c5b-4a39-4827-9615-0f4e3d2c1b0a"
)

// example is a valid request as a client sends it in Connect JSON. Every request
// type of the contract has at least one; a type has more when that is needed to
// reach the rules of another oneof branch. Optional fields are filled in, so the
// rules on them are exercised too. Where the contract's comments give an example
// value, it is used here, which also checks the comments against the rules.
//
// "{{now+1h}}" and the like stand for a timestamp relative to the test's start,
// for rules that are relative to now.
type example struct {
	typ     protoreflect.FullName
	variant string
	json    string
}

var examples = []example{
	// trialhub.patient.v1.AuthService
	{typ: "trialhub.patient.v1.RegisterRequest", json: `{
		"mobile": "+4915112345678", "password": "correct horse battery",
		"fullName": "Anna Maria Schmidt", "nationalId": "T22000129", "nationalIdCountry": "DE",
		"idempotencyKey": "register-7f3c9a1e2b4d"}`},
	{typ: "trialhub.patient.v1.ConfirmRegistrationRequest", json: `{
		"registrationId": "` + registrationID + `", "code": "042917", "idempotencyKey": "verify-5d7f9b1c3e2a"}`},
	{typ: "trialhub.patient.v1.ActivateAccountRequest", variant: "mobile", json: `{
		"mobile": "+4915112345678", "activationCode": "K7QM4XPA", "password": "correct horse battery",
		"idempotencyKey": "activate-1b3d5f7a9c2e"}`},
	{typ: "trialhub.patient.v1.ActivateAccountRequest", variant: "username", json: `{
		"username": "j.moreau", "activationCode": "K7QM4XPA", "password": "a chosen secret",
		"idempotencyKey": "activate-2c4e6a8b0d1f"}`},
	{typ: "trialhub.patient.v1.ActivateAccountRequest", variant: "subject", json: `{
		"subjectUuid": "` + subjectID + `", "activationCode": "K7QM4XPA", "password": "correct horse battery",
		"idempotencyKey": "activate-3d5f7b9c1e2a"}`},
	{typ: "trialhub.patient.v1.LoginRequest", variant: "mobile", json: `{"mobile": "+4915112345678", "password": "correct horse battery"}`},
	{typ: "trialhub.patient.v1.LoginRequest", variant: "username", json: `{"username": "j.moreau", "password": "an initial secret"}`},
	{typ: "trialhub.patient.v1.RefreshTokenRequest", json: `{"refreshToken": "rt_4f9c2a7d1e8b6f3a0c5d9e2b7a4f1c8d6e3b0a9f"}`},
	{typ: "trialhub.patient.v1.CreateStaffAccountRequest", json: `{
		"username": "j.moreau", "displayName": "Dr. Julie Moreau", "password": "an initial secret",
		"role": "ROLE_INVESTIGATOR", "siteIds": ["` + siteID + `"], "trialIds": ["` + trialID + `"],
		"idempotencyKey": "staff-3e5a7c9b1d2f"}`},
	{typ: "trialhub.patient.v1.CreateStaffAccountRequest", variant: "analyst", json: `{
		"username": "a.okafor", "displayName": "Ada Okafor", "password": "an initial secret",
		"role": "ROLE_ANALYST", "trialIds": ["` + trialID + `"],
		"idempotencyKey": "staff-8b6d4f2a0c1e"}`},
	{typ: "trialhub.patient.v1.CreateStaffAccountRequest", variant: "admin", json: `{
		"username": "admin", "displayName": "Platform Administrator", "password": "an initial secret",
		"role": "ROLE_ADMIN", "idempotencyKey": "staff-0a2c4e6f8b1d"}`},
	{typ: "trialhub.patient.v1.LogoutRequest", json: `{"refreshToken": "rt_4f9c2a7d1e8b6f3a0c5d9e2b7a4f1c8d6e3b0a9f"}`},
	{typ: "trialhub.patient.v1.ChangePasswordRequest", json: `{
		"currentPassword": "correct horse battery", "newPassword": "staple battery horse correct",
		"idempotencyKey": "password-4a6c8e0b2d1f"}`},
	{typ: "trialhub.patient.v1.ResetAccessRequest", variant: "patient", json: `{
		"subjectUuid": "` + subjectID + `", "reason": "Lost phone, reported at visit W6", "idempotencyKey": "reset-patient-7b9d1f3a5c"}`},
	{typ: "trialhub.patient.v1.ResetAccessRequest", variant: "staff", json: `{
		"staffId": "` + staffID + `", "reason": "Lost phone, reported at visit W6", "idempotencyKey": "reset-staff-7b9d1f3a5c"}`},
	{typ: "trialhub.patient.v1.SuspendAccountRequest", variant: "patient", json: `{
		"subjectUuid": "` + subjectID + `", "reason": "Participant withdrew consent"}`},
	{typ: "trialhub.patient.v1.SuspendAccountRequest", variant: "staff", json: `{
		"staffId": "` + staffID + `", "reason": "Participant withdrew consent"}`},
	{typ: "trialhub.patient.v1.ReactivateAccountRequest", variant: "patient", json: `{
		"subjectUuid": "` + subjectID + `", "reason": "Consent re-confirmed at visit W8"}`},
	{typ: "trialhub.patient.v1.ReactivateAccountRequest", variant: "staff", json: `{
		"staffId": "` + staffID + `", "reason": "Consent re-confirmed at visit W8"}`},
	{typ: "trialhub.patient.v1.UpdateStaffAccountRequest", json: `{
		"staffId": "` + staffID + `", "role": "ROLE_INVESTIGATOR", "siteIds": ["` + siteID + `"],
		"trialIds": ["` + trialID + `"], "reason": "Moved to the Lyon site for TH-DEP-001"}`},
	{typ: "trialhub.patient.v1.UpdateStaffAccountRequest", variant: "analyst", json: `{
		"staffId": "` + staffID + `", "role": "ROLE_ANALYST", "trialIds": ["` + trialID + `"],
		"reason": "Now analyses TH-DEP-001 only"}`},
	{typ: "trialhub.patient.v1.UpdateStaffAccountRequest", variant: "admin", json: `{
		"staffId": "` + staffID + `", "role": "ROLE_ADMIN", "reason": "Promoted to platform administrator"}`},
	{typ: "trialhub.patient.v1.ListStaffAccountsRequest", json: `{
		"roles": ["ROLE_INVESTIGATOR", "ROLE_ANALYST"], "statuses": ["ACCOUNT_STATUS_ACTIVE", "ACCOUNT_STATUS_SUSPENDED"],
		"siteId": "` + siteID + `", "trialId": "` + trialID + `", "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.patient.v1.IssueServiceTokenRequest", json: `{
		"serviceName": "notification", "clientSecret": "s3cr3t-Zm9vYmFyYmF6cXV4LXJvdGF0ZS0yMDI2LTEy"}`},
	{typ: "trialhub.patient.v1.ListSiteStaffRequest", json: `{
		"siteId": "` + siteID + `", "trialId": "` + trialID + `", "pageSize": 100, "pageToken": "page-2"}`},
	{typ: "trialhub.patient.v1.GetSigningKeysRequest", json: `{}`},

	// trialhub.patient.v1.PatientService
	{typ: "trialhub.patient.v1.GetProfileRequest", json: `{}`},
	{typ: "trialhub.patient.v1.UpdateProfileRequest", json: `{
		"profile": {"nickname": "Anna", "avatarUrl": "https://cdn.trialhub.example/avatars/owl.png",
			"language": "zh-Hant-TW", "timeZone": "America/Argentina/Buenos_Aires"},
		"updateMask": "nickname,avatarUrl,language,timeZone"}`},
	{typ: "trialhub.patient.v1.GetPatientIdentityRequest", json: `{
		"subjectUuid": "` + subjectID + `",
		"reason": "PHQ-9 item 9 positive on visit W4: safety call to participant",
		"trialId": "` + trialID + `", "siteId": "` + siteID + `"}`},
	{typ: "trialhub.patient.v1.InviteParticipantRequest", json: `{
		"fullName": "Anna Maria Schmidt", "nationalId": "T22000129", "nationalIdCountry": "DE",
		"mobile": "+4915112345678", "siteId": "` + siteID + `", "trialId": "` + trialID + `",
		"idempotencyKey": "invite-6e8a0c2d4f1b"}`},
	{typ: "trialhub.patient.v1.GetSubjectStatusRequest", json: `{"subjectUuid": "` + subjectID + `"}`},

	// trialhub.patient.v1.AuditService
	{typ: "trialhub.patient.v1.ListAuditEventsRequest", json: `{
		"actorId": "` + staffID + `", "subjectUuid": "` + subjectID + `",
		"actions": ["AUDIT_ACTION_PII_READ", "AUDIT_ACTION_PII_READ_DENIED"],
		"recordType": "AUDIT_RECORD_TYPE_PATIENT_IDENTITY", "recordId": "` + subjectID + `",
		"occurredFrom": "2025-01-01T00:00:00Z", "occurredUntil": "2025-02-01T00:00:00Z",
		"order": "AUDIT_EVENT_ORDER_NEWEST_FIRST", "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.patient.v1.ExportAuditEventsRequest", json: `{
		"actorId": "` + staffID + `", "subjectUuid": "` + subjectID + `",
		"actions": ["AUDIT_ACTION_PII_READ", "AUDIT_ACTION_AUDIT_EXPORTED"],
		"recordType": "AUDIT_RECORD_TYPE_PATIENT_IDENTITY", "recordId": "` + subjectID + `",
		"occurredFrom": "2025-01-01T00:00:00Z", "occurredUntil": "2025-02-01T00:00:00Z",
		"reason": "BfArM GCP inspection of TH-DEP-001, March 2026"}`},
	{typ: "trialhub.patient.v1.VerifyAuditTrailRequest", json: `{"fromSequence": "1", "toSequence": "1000"}`},

	// trialhub.trial.v1.TrialService
	{typ: "trialhub.trial.v1.CreateTrialRequest", json: `{
		"protocolCode": "TH-DEP-001", "title": "Digital PHQ-9 follow-up in major depression",
		"phase": "TRIAL_PHASE_3", "sponsor": "TrialHub Pharma GmbH",
		"registryIds": [{"registry": "EUCT", "id": "2023-500001-23-00"}, {"registry": "CTRI", "id": "CTRI/2023/01/012345"}], "description": "A randomised study of remote follow-up.",
		"lateSubmissionGraceHours": 48, "idempotencyKey": "trial-8d6f4b2a0c1e"}`},
	{typ: "trialhub.trial.v1.GetTrialRequest", json: `{"trialId": "` + trialID + `", "visitScheduleVersion": 2}`},
	{typ: "trialhub.trial.v1.ListTrialsRequest", json: `{
		"statuses": ["TRIAL_STATUS_RECRUITING", "TRIAL_STATUS_PLANNED"], "phases": ["TRIAL_PHASE_3"],
		"query": "depression", "pageSize": 20, "pageToken": "page-2"}`},
	{typ: "trialhub.trial.v1.AddSiteRequest", json: `{
		"trialId": "` + trialID + `", "siteCode": "DE-001", "name": "Charité – Universitätsmedizin Berlin",
		"countryCode": "DE", "timeZone": "Europe/Berlin", "idempotencyKey": "site-1a3c5e7f9b2d"}`},
	{typ: "trialhub.trial.v1.UpdateTrialStatusRequest", json: `{
		"trialId": "` + trialID + `", "status": "TRIAL_STATUS_RECRUITING",
		"reason": "Ethics approval received", "idempotencyKey": "status-3e5a7c9b1d2f"}`},
	{typ: "trialhub.trial.v1.UpdateTrialRequest", json: `{
		"trialId": "` + trialID + `", "updateMask": "title,registryIds,description,lateSubmissionGraceHours",
		"title": "Digital PHQ-9 follow-up in major depressive disorder",
		"registryIds": [{"registry": "NCT", "id": "NCT01234567"}], "description": "A randomised study.",
		"lateSubmissionGraceHours": 12, "reason": "Registered on ClinicalTrials.gov", "idempotencyKey": "trial-upd-6b8d0f2a4c"}`},
	{typ: "trialhub.trial.v1.UpdateSiteRequest", json: `{
		"siteId": "` + siteID + `", "updateMask": "name,countryCode,timeZone",
		"name": "Charité Berlin, Campus Mitte", "countryCode": "DE", "timeZone": "Europe/Berlin",
		"reason": "Institution renamed", "idempotencyKey": "site-upd-7c9e1a3b5d"}`},
	{typ: "trialhub.trial.v1.CloseSiteRequest", json: `{
		"siteId": "` + siteID + `", "reason": "Recruitment target of the site reached",
		"idempotencyKey": "site-close-8d0f2b4c6e"}`},
	{typ: "trialhub.trial.v1.DefineVisitScheduleRequest", json: `{
		"trialId": "` + trialID + `",
		"visits": [
			{"code": "BASELINE", "name": "Baseline", "studyDay": 1, "windowBeforeDays": 0, "windowAfterDays": 3,
				"questionnaires": [{"questionnaireId": "` + questionnaireID + `", "version": "1.0.0"}]},
			{"code": "W04", "name": "Week 4", "studyDay": 29, "windowBeforeDays": 3, "windowAfterDays": 3,
				"questionnaires": [{"questionnaireUrl": "http://loinc.org/q/44249-1", "version": "3"}]},
			{"code": "SCREENING", "name": "Screening", "studyDay": -7, "windowBeforeDays": 3, "windowAfterDays": 3,
				"questionnaires": [{"questionnaireUrl": "http://loinc.org/q/69737-5", "version": "1.0.0"}]}
		],
		"baseVersion": 0, "existingPlanPolicy": "EXISTING_PLAN_POLICY_KEEP_VERSION",
		"reason": "Initial schedule, protocol v1.0", "idempotencyKey": "schedule-5b7d9f1a3c"}`},
	{typ: "trialhub.trial.v1.EnrollSubjectRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `", "subjectUuid": "` + subjectID + `",
		"enrollmentDate": "2025-02-01", "idempotencyKey": "enroll-2c4e6a8b0d"}`},
	{typ: "trialhub.trial.v1.WithdrawSubjectRequest", variant: "by enrollment", json: `{
		"enrollmentId": "` + enrollmentID + `", "reasonCode": "WITHDRAWAL_REASON_CONSENT_WITHDRAWN",
		"reason": "Subject withdrew consent at the week 4 visit", "withdrawalDate": "2025-03-01",
		"idempotencyKey": "withdraw-9e7c5a3b1d"}`},
	{typ: "trialhub.trial.v1.WithdrawSubjectRequest", variant: "by subject and trial", json: `{
		"subjectUuid": "` + subjectID + `", "trialId": "` + trialID + `",
		"reasonCode": "WITHDRAWAL_REASON_OTHER", "reason": "Moved abroad", "withdrawalDate": "2025-03-01",
		"idempotencyKey": "withdraw-1f3e5d7c9b"}`},
	{typ: "trialhub.trial.v1.ListEnrollmentsRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `", "subjectUuid": "` + subjectID + `",
		"statuses": ["ENROLLMENT_STATUS_ENROLLED"], "pageSize": 200, "pageToken": "page-2"}`},
	{typ: "trialhub.trial.v1.ListDeidentifiedEnrollmentsRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `",
		"statuses": ["ENROLLMENT_STATUS_WITHDRAWN"], "pageSize": 100, "pageToken": "page-2"}`},
	{typ: "trialhub.trial.v1.GetSubjectVisitPlanRequest", json: `{"subjectUuid": "` + subjectID + `", "trialId": "` + trialID + `"}`},
	{typ: "trialhub.trial.v1.RecordVisitCompletionRequest", json: `{
		"subjectUuid": "` + subjectID + `", "trialId": "` + trialID + `", "subjectVisitId": "` + visitID + `",
		"completedAt": "2025-03-01T10:05:00Z", "sourceReferences": ["epro:response/` + responseID + `"],
		"idempotencyKey": "complete-` + visitID + `"}`},

	{typ: "trialhub.trial.v1.WithdrawVisitCompletionRequest", json: `{
		"subjectUuid": "` + subjectID + `", "trialId": "` + trialID + `", "subjectVisitId": "` + visitID + `",
		"sourceReference": "epro:response/` + responseID + `",
		"reason": "Response entered in error: answered on the wrong device",
		"idempotencyKey": "uncomplete-` + visitID + `"}`},
	{typ: "trialhub.trial.v1.ListWorklistRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `",
		"statuses": ["SUBJECT_VISIT_STATUS_PENDING", "SUBJECT_VISIT_STATUS_MISSED"],
		"windowFromDate": "2025-03-03", "windowToDate": "2025-03-09",
		"updatedAfter": "2025-03-01T00:00:00Z", "pageSize": 100, "pageToken": "page-2"}`},
	{typ: "trialhub.trial.v1.MoveToScheduleVersionRequest", json: `{
		"enrollmentId": "` + enrollmentID + `", "visitScheduleVersion": 2,
		"reason": "Re-consented to protocol amendment 2", "idempotencyKey": "move-4c6e8a0b2d1f"}`},
	{typ: "trialhub.trial.v1.ListAuditEventsRequest", json: `{
		"actorId": "` + staffID + `", "subjectUuid": "` + subjectID + `",
		"actions": ["AUDIT_ACTION_SUBJECT_ENROLLED", "AUDIT_ACTION_SUBJECT_WITHDRAWN"],
		"recordType": "AUDIT_RECORD_TYPE_ENROLLMENT", "recordId": "` + enrollmentID + `",
		"occurredFrom": "2025-01-01T00:00:00Z", "occurredUntil": "2025-02-01T00:00:00Z",
		"order": "AUDIT_EVENT_ORDER_NEWEST_FIRST", "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.trial.v1.VerifyAuditTrailRequest", json: `{"fromSequence": "1", "toSequence": "1000"}`},

	// trialhub.epro.v1.EproService
	{typ: "trialhub.epro.v1.CreateQuestionnaireRequest", json: `{
		"idempotencyKey": "questionnaire-phq9-1.0.0",
		"url": "https://trialhub.example/fhir/Questionnaire/phq-9", "version": "1.0.0-es",
		"name": "PHQ9", "title": "Patient Health Questionnaire-9",
		"code": {"system": "http://loinc.org", "code": "44249-1", "display": "PHQ-9 quick depression assessment panel"},
		"status": "QUESTIONNAIRE_STATUS_ACTIVE", "description": "Over the last 2 weeks.", "language": "es-MX",
		"copyright": "Copyright Pfizer Inc. No permission required to reproduce.",
		"items": [
			{"linkId": "1", "code": {"system": "http://loinc.org", "code": "44250-9"}, "prefix": "1.",
				"text": "Little interest or pleasure in doing things", "type": "ITEM_TYPE_CHOICE", "required": true,
				"textTranslations": [{"language": "es-MX", "text": "Poco interés o placer en hacer cosas"}],
				"answerOptions": [
					{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5", "display": "Not at all"}, "score": 0},
					{"valueInteger": 1, "score": 1},
					{"valueString": "More than half the days", "score": 2}
				]},
			{"linkId": "2", "text": "On how many days did you feel down?", "type": "ITEM_TYPE_INTEGER",
				"minValue": {"valueInteger": 0}, "maxValue": {"valueInteger": 14},
				"enableWhen": [
					{"questionLinkId": "1", "operator": "ENABLE_WHEN_OPERATOR_GREATER", "answer": {"valueInteger": 0}},
					{"questionLinkId": "1", "operator": "ENABLE_WHEN_OPERATOR_EXISTS", "answer": {"valueBoolean": true}}
				],
				"enableBehavior": "ENABLE_BEHAVIOR_ANY"},
			{"linkId": "g", "text": "About you", "type": "ITEM_TYPE_GROUP",
				"items": [{"linkId": "g.1", "text": "Anything else?", "type": "ITEM_TYPE_TEXT", "maxLength": 500},
					{"linkId": "g.2", "text": "How old are you?", "type": "ITEM_TYPE_INTEGER", "age": true},
					{"linkId": "g.3", "text": "Your weight", "type": "ITEM_TYPE_QUANTITY",
						"unit": {"system": "http://unitsofmeasure.org", "code": "kg", "display": "kilogram"}}]}
		],
		"scoringRules": [
			{"name": "total", "title": "PHQ-9 total score",
				"code": {"system": "http://loinc.org", "code": "44261-6"},
				"method": "SCORING_METHOD_SUM", "linkIds": ["1", "2"],
				"bands": [
					{"min": 0, "max": 4, "label": "Minimal", "code": {"code": "minimal"}},
					{"min": 5, "max": 27, "label": "Mild or worse"}
				]}
		],
		"alertRules": [
			{"name": "item1_high", "title": "Item 1 high",
				"itemScore": {"linkId": "1", "operator": "COMPARISON_OPERATOR_GREATER", "threshold": 1},
				"priority": "ALERT_PRIORITY_URGENT", "patientMessage": "If you are in crisis, call 112 now."},
			{"name": "total_high", "title": "Total of 20 or more",
				"totalScore": {"scoringRuleName": "total", "operator": "COMPARISON_OPERATOR_GREATER_OR_EQUAL", "threshold": 20},
				"priority": "ALERT_PRIORITY_ROUTINE"}
		], "showScoresToPatient": false}`},
	{typ: "trialhub.epro.v1.ImportFhirQuestionnaireRequest", json: `{
		"idempotencyKey": "import-gad7-1.0.0",
		"questionnaireJson": "{\"resourceType\":\"Questionnaire\",\"url\":\"https://trialhub.example/fhir/Questionnaire/gad-7\",\"version\":\"1.0.0\",\"status\":\"active\"}",
		"status": "QUESTIONNAIRE_STATUS_DRAFT",
		"scoringRules": [{"name": "total", "title": "GAD-7 total score", "method": "SCORING_METHOD_SUM", "linkIds": ["1"]}],
		"alertRules": [{"name": "total_high", "title": "Severe anxiety",
			"totalScore": {"scoringRuleName": "total", "operator": "COMPARISON_OPERATOR_GREATER_OR_EQUAL", "threshold": 15},
			"priority": "ALERT_PRIORITY_ROUTINE"}],
		"validateOnly": true, "showScoresToPatient": true}`},
	{typ: "trialhub.epro.v1.GetQuestionnaireRequest", variant: "by id", json: `{"questionnaireId": "` + questionnaireID + `"}`},
	{typ: "trialhub.epro.v1.GetQuestionnaireRequest", variant: "by canonical", json: `{
		"canonical": {"url": "https://trialhub.example/fhir/Questionnaire/phq-9", "version": "1.0.0"}}`},
	{typ: "trialhub.epro.v1.ListQuestionnairesRequest", json: `{
		"url": "https://trialhub.example/fhir/Questionnaire/phq-9", "statuses": ["QUESTIONNAIRE_STATUS_ACTIVE", "QUESTIONNAIRE_STATUS_RETIRED"],
		"pageSize": 10, "pageToken": "page-2"}`},
	{typ: "trialhub.epro.v1.GetMyQuestionnaireRequest", json: `{"questionnaireId": "` + questionnaireID + `", "language": "es-MX"}`},
	{typ: "trialhub.epro.v1.SetQuestionnaireStatusRequest", json: `{
		"idempotencyKey": "status-` + questionnaireID + `", "questionnaireId": "` + questionnaireID + `",
		"status": "QUESTIONNAIRE_STATUS_ACTIVE", "reason": "Approved by the steering committee"}`},
	{typ: "trialhub.epro.v1.GetMyResponseRequest", json: `{"responseId": "` + responseID + `", "revision": 2}`},
	{typ: "trialhub.epro.v1.ReviewFreeTextRequest", json: `{
		"idempotencyKey": "review-` + responseID + `", "responseId": "` + responseID + `", "revision": 1,
		"linkId": "8", "decision": "FREE_TEXT_DECISION_REDACTED", "reason": "Contains a first name"}`},
	{typ: "trialhub.epro.v1.ListQuarantineRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `",
		"states": ["QUARANTINE_STATE_PENDING", "QUARANTINE_STATE_ACCEPTED"], "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.epro.v1.ResolveQuarantineRequest", json: `{
		"idempotencyKey": "resolve-` + responseID + `", "quarantineId": "` + responseID + `",
		"resolution": "QUARANTINE_RESOLUTION_ACCEPT", "reason": "Phone was offline during a hospital stay"}`},
	{typ: "trialhub.epro.v1.ListAuditEventsRequest", json: `{
		"actorId": "` + staffID + `", "subjectUuid": "` + subjectID + `",
		"actions": ["AUDIT_ACTION_RESPONSE_AMENDED", "AUDIT_ACTION_QUARANTINE_ACCEPTED"],
		"recordType": "AUDIT_RECORD_TYPE_RESPONSE", "recordId": "` + responseID + `",
		"occurredFrom": "2025-01-01T00:00:00Z", "occurredUntil": "2025-02-01T00:00:00Z",
		"order": "AUDIT_EVENT_ORDER_NEWEST_FIRST", "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.epro.v1.VerifyAuditTrailRequest", json: `{"fromSequence": "1", "toSequence": "1000"}`},
	{typ: "trialhub.epro.v1.ListMyTasksRequest", json: `{
		"trialId": "` + trialID + `", "statuses": ["TASK_STATUS_DUE", "TASK_STATUS_UPCOMING"],
		"pageSize": 20, "pageToken": "page-2"}`},
	{typ: "trialhub.epro.v1.SubmitResponseRequest", json: `{
		"idempotencyKey": "submit-` + visitID + `",
		"trialId": "` + trialID + `", "subjectVisitId": "` + visitID + `", "questionnaireId": "` + questionnaireID + `",
		"authoredAt": "2025-03-01T10:00:00Z",
		"answers": [
			{"linkId": "1", "values": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5", "display": "Not at all"}}]},
			{"linkId": "2", "values": [{"valueInteger": 3}]},
			{"linkId": "3", "values": [{"valueQuantity": {"value": "72.5", "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}]},
			{"linkId": "4", "values": [{"valueDecimal": "37.5"}]},
			{"linkId": "5", "values": [{"valueDate": "2025-02-28"}]},
			{"linkId": "6", "values": [{"valueDateTime": "2025-02-28T21:30:00Z"}]},
			{"linkId": "7", "values": [{"valueTime": "08:30:00"}]},
			{"linkId": "8", "values": [{"valueString": "Slept badly"}]},
			{"linkId": "9", "values": [{"valueUri": "https://example.org/diary"}]},
			{"linkId": "10", "values": [{"valueBoolean": false}]}
		]}`},
	{typ: "trialhub.epro.v1.AmendResponseRequest", json: `{
		"idempotencyKey": "amend-` + responseID + `", "responseId": "` + responseID + `",
		"expectedRevision": 1, "action": "AMEND_ACTION_CORRECT_ANSWERS",
		"answers": [{"linkId": "1", "values": [{"valueInteger": 2}]}],
		"reason": "Patient tapped the wrong option on item 1"}`},
	{typ: "trialhub.epro.v1.ListResponsesRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `", "questionnaireId": "` + questionnaireID + `",
		"visitCodes": ["W04", "W08"], "subjectUuid": "` + subjectID + `",
		"statuses": ["RESPONSE_STATUS_COMPLETED", "RESPONSE_STATUS_AMENDED"],
		"includeHistory": true, "freeText": "FREE_TEXT_VISIBILITY_ALL", "pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.epro.v1.ExportResponsesRequest", json: `{
		"format": "EXPORT_FORMAT_CSV", "trialId": "` + trialID + `", "siteId": "` + siteID + `",
		"questionnaireUrl": "https://trialhub.example/fhir/Questionnaire/phq-9", "visitCodes": ["W04"],
		"statuses": ["RESPONSE_STATUS_COMPLETED"], "freeText": "FREE_TEXT_VISIBILITY_REVIEWED_ONLY"}`},
	{typ: "trialhub.epro.v1.GetComplianceReportRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `", "asOfDate": "2025-03-31",
		"questionnaireUrl": "http://loinc.org/q/44249-1", "pageSize": 50, "pageToken": "page-2", "bySubject": true}`},

	// trialhub.notification.v1.NotificationService
	{typ: "trialhub.notification.v1.RegisterDeviceRequest", json: `{
		"pushToken": "fcm:APA91bHun4MxP5egoKMwt2KZFBaFUH", "platform": "DEVICE_PLATFORM_ANDROID",
		"appVersion": "2.4.1+317", "locale": "zh-Hant-TW"}`},
	{typ: "trialhub.notification.v1.UnregisterDeviceRequest", json: `{"deviceId": "` + deviceID + `"}`},
	{typ: "trialhub.notification.v1.SendNotificationRequest", variant: "reminder", json: `{
		"idempotencyKey": "reminder:` + visitID + `:window-open",
		"kind": "NOTIFICATION_KIND_REMINDER", "recipient": {"subjectUuid": "` + subjectID + `"},
		"templateCode": "visit_window_opened",
		"templateParameters": [{"name": "closes_in", "days": 2}, {"name": "due_count", "count": 1}],
		"priority": "NOTIFICATION_PRIORITY_NORMAL",
		"notBefore": "{{now+1h}}", "expiresAt": "{{now+48h}}",
		"trialId": "` + trialID + `", "subjectVisitId": "` + visitID + `", "aboutSubjectUuid": "` + subjectID + `",
		"sourceReference": "trial:visit/` + visitID + `"}`},
	{typ: "trialhub.notification.v1.SendNotificationRequest", variant: "alert", json: `{
		"idempotencyKey": "alert:` + responseID + `",
		"kind": "NOTIFICATION_KIND_ALERT", "recipient": {"staff": {"siteId": "` + siteID + `"}},
		"templateCode": "safety_alert_phq9_item9", "priority": "NOTIFICATION_PRIORITY_HIGH",
		"trialId": "` + trialID + `", "aboutSubjectUuid": "` + subjectID + `",
		"sourceReference": "epro:response/` + responseID + `"}`},
	{typ: "trialhub.notification.v1.GetNotificationRequest", json: `{"notificationId": "` + notificationID + `"}`},
	{typ: "trialhub.notification.v1.ListNotificationsRequest", json: `{
		"statuses": ["NOTIFICATION_STATUS_FAILED", "NOTIFICATION_STATUS_EXPIRED"], "kinds": ["NOTIFICATION_KIND_ALERT"],
		"subjectUuid": "` + subjectID + `", "siteId": "` + siteID + `", "trialId": "` + trialID + `",
		"createdFrom": "2025-01-01T00:00:00Z", "createdUntil": "2025-02-01T00:00:00Z",
		"pageSize": 100, "pageToken": "page-2"}`},
	{typ: "trialhub.notification.v1.CancelNotificationRequest", json: `{
		"notificationId": "` + notificationID + `", "reason": "questionnaire submitted"}`},
	{typ: "trialhub.notification.v1.ListMyDevicesRequest", json: `{"pageSize": 20, "pageToken": "page-2"}`},
	{typ: "trialhub.notification.v1.ReportNotificationOpenedRequest", json: `{"notificationId": "` + notificationID + `"}`},
	{typ: "trialhub.notification.v1.RequeueNotificationRequest", json: `{
		"notificationId": "` + notificationID + `", "reason": "vendor credentials renewed"}`},
	{typ: "trialhub.notification.v1.ListSafetyAlertsRequest", json: `{
		"trialId": "` + trialID + `", "siteId": "` + siteID + `", "statuses": ["SAFETY_ALERT_STATUS_OPEN"],
		"pageSize": 50, "pageToken": "page-2"}`},
	{typ: "trialhub.notification.v1.AcknowledgeSafetyAlertRequest", json: `{"alertId": "` + notificationID + `"}`},
}

// name is how the example is called in test output.
func (e example) name() string {
	if e.variant == "" {
		return string(e.typ.Name())
	}
	return string(e.typ.Name()) + "/" + e.variant
}

var relativeTime = regexp.MustCompile(`\{\{now([+-][0-9]+[hms])\}\}`)

// message parses the example.
func (e example) message(t testing.TB) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(e.typ)
	if err != nil {
		t.Fatalf("%s: %v", e.name(), err)
	}
	now := time.Now()
	body := relativeTime.ReplaceAllStringFunc(e.json, func(s string) string {
		d, err := time.ParseDuration(relativeTime.FindStringSubmatch(s)[1])
		if err != nil {
			t.Fatalf("%s: %s: %v", e.name(), s, err)
		}
		return now.Add(d).UTC().Format(time.RFC3339)
	})
	msg := mt.New().Interface()
	if err := protojson.Unmarshal([]byte(body), msg); err != nil {
		t.Fatalf("%s: parse: %v", e.name(), err)
	}
	return msg
}

// exampleOf returns the example of the request type of T with the given variant,
// or its first example when variant is empty.
func exampleOf[T proto.Message](t testing.TB, variant string) T {
	t.Helper()
	var zero T
	name := zero.ProtoReflect().Descriptor().FullName()
	for _, e := range examples {
		if e.typ == name && (variant == "" || e.variant == variant) {
			return e.message(t).(T)
		}
	}
	t.Fatalf("no example %q of %s", variant, name)
	return zero
}
