package contract_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
)

// ruleCase is one hand-written invalid request that breaks exactly one CEL rule
// or oneof rule of the contract.
type ruleCase struct {
	rule  string    // the CEL rule id, or the full name of the oneof whose rule is broken
	want  violation // the violation expected
	build func(t testing.TB) proto.Message
}

// celCase starts from the example variant of T, breaks CEL rule id with edit and
// expects a violation at path ("" for a rule on the request message itself).
func celCase[T proto.Message](variant, id, path string, edit func(T)) ruleCase {
	return ruleCase{rule: id, want: violation{path, id}, build: func(t testing.TB) proto.Message {
		m := exampleOf[T](t, variant)
		edit(m)
		return m
	}}
}

// oneofCase starts from the example variant of T, leaves the oneof empty with
// edit and expects a "required" violation at path, the oneof's name.
func oneofCase[T proto.Message](variant string, oneof protoreflect.FullName, path string, edit func(T)) ruleCase {
	c := celCase(variant, "", path, edit)
	c.rule, c.want.id = string(oneof), "required"
	return c
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

func inAnHour() *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(time.Hour)) }

// ruleCases covers every CEL rule (message- and field-level) and every oneof rule
// reachable from a request; TestCELAndOneofRules checks that none is missing.
var ruleCases = []ruleCase{
	// trialhub.patient.v1
	celCase("", "create_staff_account.investigator_needs_sites", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.SiteIds = nil
	}),
	celCase("", "create_staff_account.investigator_needs_trials", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.TrialIds = nil
	}),
	celCase("analyst", "create_staff_account.analyst_needs_trials", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.TrialIds = nil
	}),
	celCase("analyst", "create_staff_account.analyst_has_no_sites", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.SiteIds = []string{siteID}
	}),
	celCase("admin", "create_staff_account.admin_has_no_sites", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.SiteIds = []string{siteID}
	}),
	celCase("admin", "create_staff_account.admin_has_no_trials", "", func(m *patientv1.CreateStaffAccountRequest) {
		m.TrialIds = []string{trialID}
	}),
	celCase("", "create_staff_account.role.staff_only", "role", func(m *patientv1.CreateStaffAccountRequest) {
		m.Role = authzv1.Role_ROLE_PATIENT
	}),
	oneofCase("mobile", "trialhub.patient.v1.LoginRequest.identifier", "identifier", func(m *patientv1.LoginRequest) {
		m.Identifier = nil
	}),
	oneofCase("mobile", "trialhub.patient.v1.ActivateAccountRequest.identifier", "identifier", func(m *patientv1.ActivateAccountRequest) {
		m.Identifier = nil
	}),
	celCase("", "update_staff_account.investigator_needs_sites", "", func(m *patientv1.UpdateStaffAccountRequest) {
		m.SiteIds = nil
	}),
	celCase("", "update_staff_account.investigator_needs_trials", "", func(m *patientv1.UpdateStaffAccountRequest) {
		m.TrialIds = nil
	}),
	celCase("analyst", "update_staff_account.analyst_needs_trials", "", func(m *patientv1.UpdateStaffAccountRequest) {
		m.TrialIds = nil
	}),
	celCase("analyst", "update_staff_account.analyst_has_no_sites", "", func(m *patientv1.UpdateStaffAccountRequest) {
		m.SiteIds = []string{siteID}
	}),
	celCase("admin", "update_staff_account.admin_has_no_scopes", "", func(m *patientv1.UpdateStaffAccountRequest) {
		m.TrialIds = []string{trialID}
	}),
	celCase("", "update_staff_account.role.staff_only", "role", func(m *patientv1.UpdateStaffAccountRequest) {
		m.Role = authzv1.Role_ROLE_SERVICE
	}),
	oneofCase("patient", "trialhub.patient.v1.ResetAccessRequest.account", "account", func(m *patientv1.ResetAccessRequest) {
		m.Account = nil
	}),
	oneofCase("staff", "trialhub.patient.v1.SuspendAccountRequest.account", "account", func(m *patientv1.SuspendAccountRequest) {
		m.Account = nil
	}),
	oneofCase("patient", "trialhub.patient.v1.ReactivateAccountRequest.account", "account", func(m *patientv1.ReactivateAccountRequest) {
		m.Account = nil
	}),
	celCase("", "update_profile.update_mask.non_empty", "update_mask", func(m *patientv1.UpdateProfileRequest) {
		m.UpdateMask = &fieldmaskpb.FieldMask{}
	}),
	celCase("", "list_audit_events.time_range", "", func(m *patientv1.ListAuditEventsRequest) {
		m.OccurredFrom, m.OccurredUntil = m.OccurredUntil, m.OccurredFrom
	}),
	celCase("", "list_audit_events.record_id_needs_type", "", func(m *patientv1.ListAuditEventsRequest) {
		m.RecordType = patientv1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED
	}),
	celCase("", "export_audit_events.time_range", "", func(m *patientv1.ExportAuditEventsRequest) {
		m.OccurredFrom, m.OccurredUntil = m.OccurredUntil, m.OccurredFrom
	}),
	celCase("", "export_audit_events.record_id_needs_type", "", func(m *patientv1.ExportAuditEventsRequest) {
		m.RecordType = patientv1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED
	}),
	celCase("", "verify_audit_trail.sequence_range", "", func(m *patientv1.VerifyAuditTrailRequest) {
		m.FromSequence, m.ToSequence = proto.Int64(10), proto.Int64(9)
	}),

	// trialhub.trial.v1
	celCase("", "create_trial.registry_ids.registries_unique", "registry_ids", func(m *trialv1.CreateTrialRequest) {
		m.RegistryIds = append(m.RegistryIds, &trialv1.RegistryId{Registry: m.RegistryIds[0].Registry, Id: "OTHER-1"})
	}),
	celCase("", "update_trial.title_required", "", func(m *trialv1.UpdateTrialRequest) {
		m.Title = ""
	}),
	celCase("", "update_trial.update_mask.non_empty", "update_mask", func(m *trialv1.UpdateTrialRequest) {
		m.UpdateMask.Paths = nil
	}),
	celCase("", "update_trial.registry_ids.registries_unique", "registry_ids", func(m *trialv1.UpdateTrialRequest) {
		m.RegistryIds = append(m.RegistryIds, &trialv1.RegistryId{Registry: m.RegistryIds[0].Registry, Id: "OTHER-1"})
	}),
	celCase("", "update_site.named_fields_set", "", func(m *trialv1.UpdateSiteRequest) {
		m.TimeZone = ""
	}),
	celCase("", "update_site.update_mask.non_empty", "update_mask", func(m *trialv1.UpdateSiteRequest) {
		m.UpdateMask.Paths = nil
	}),
	celCase("", "define_visit_schedule.codes_unique", "", func(m *trialv1.DefineVisitScheduleRequest) {
		m.Visits[1].Code = m.Visits[0].Code
	}),
	celCase("", "visit.questionnaires_unique", "visits[0]", func(m *trialv1.DefineVisitScheduleRequest) {
		m.Visits[0].Questionnaires = append(m.Visits[0].Questionnaires, clone(m.Visits[0].Questionnaires[0]))
	}),
	oneofCase("", "trialhub.trial.v1.QuestionnaireRef.ref", "visits[1].questionnaires[0].ref", func(m *trialv1.DefineVisitScheduleRequest) {
		m.Visits[1].Questionnaires[0].Ref = nil
	}),
	celCase("", "define_visit_schedule.windows_disjoint", "", func(m *trialv1.DefineVisitScheduleRequest) {
		// Screening (day -7, +3) now reaches day -1, which touches nothing, and
		// baseline opens 1 day before day 1, which is day -1: one day shared.
		m.Visits[0].WindowBeforeDays = 1
		m.Visits[2].WindowAfterDays = 6
	}),
	celCase("", "visit.study_day.not_zero", "visits[2].study_day", func(m *trialv1.DefineVisitScheduleRequest) {
		m.Visits[0].StudyDay = 2 // keep the windows apart: day 0 would be offset 0
		m.Visits[2].StudyDay, m.Visits[2].WindowAfterDays = 0, 0
	}),
	celCase("", "visit.questionnaires_one_kind", "visits[0]", func(m *trialv1.DefineVisitScheduleRequest) {
		// The same questionnaire, once by id and once by URL.
		m.Visits[0].Questionnaires = append(m.Visits[0].Questionnaires, clone(m.Visits[1].Questionnaires[0]))
	}),
	celCase("", "enroll_subject.enrollment_date.exists", "enrollment_date", func(m *trialv1.EnrollSubjectRequest) {
		m.EnrollmentDate = "2025-02-31"
	}),
	celCase("by enrollment", "withdraw_subject.withdrawal_date.exists", "withdrawal_date", func(m *trialv1.WithdrawSubjectRequest) {
		m.WithdrawalDate = "2023-02-29" // 2023 is no leap year
	}),
	celCase("by enrollment", "withdraw_subject.target", "", func(m *trialv1.WithdrawSubjectRequest) {
		m.SubjectUuid = subjectID
	}),
	celCase("by subject and trial", "withdraw_subject.target", "", func(m *trialv1.WithdrawSubjectRequest) {
		m.TrialId = ""
	}),
	celCase("", "record_visit_completion.completed_at_not_future", "completed_at", func(m *trialv1.RecordVisitCompletionRequest) {
		m.CompletedAt = inAnHour()
	}),

	celCase("", "list_worklist.window_range", "", func(m *trialv1.ListWorklistRequest) {
		m.WindowFromDate, m.WindowToDate = "2025-03-09", "2025-03-03"
	}),
	celCase("", "list_worklist.window_from_date.exists", "window_from_date", func(m *trialv1.ListWorklistRequest) {
		m.WindowFromDate = "2025-02-30"
	}),
	celCase("", "list_worklist.window_to_date.exists", "window_to_date", func(m *trialv1.ListWorklistRequest) {
		m.WindowToDate = "2025-04-31"
	}),
	celCase("", "trial_list_audit_events.time_range", "", func(m *trialv1.ListAuditEventsRequest) {
		m.OccurredFrom, m.OccurredUntil = m.OccurredUntil, m.OccurredFrom
	}),
	celCase("", "trial_list_audit_events.record_id_needs_type", "", func(m *trialv1.ListAuditEventsRequest) {
		m.RecordType = trialv1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED
	}),
	celCase("", "trial_verify_audit_trail.sequence_range", "", func(m *trialv1.VerifyAuditTrailRequest) {
		m.FromSequence, m.ToSequence = proto.Int64(10), proto.Int64(9)
	}),

	// trialhub.epro.v1: audit trail
	celCase("", "epro_list_audit_events.time_range", "", func(m *eprov1.ListAuditEventsRequest) {
		m.OccurredFrom, m.OccurredUntil = m.OccurredUntil, m.OccurredFrom
	}),
	celCase("", "epro_list_audit_events.record_id_needs_type", "", func(m *eprov1.ListAuditEventsRequest) {
		m.RecordType = eprov1.AuditRecordType_AUDIT_RECORD_TYPE_UNSPECIFIED
	}),
	celCase("", "epro_verify_audit_trail.sequence_range", "", func(m *eprov1.VerifyAuditTrailRequest) {
		m.FromSequence, m.ToSequence = proto.Int64(10), proto.Int64(9)
	}),
	// trialhub.epro.v1: questionnaires
	celCase("", "create_questionnaire.unique_link_ids", "", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items = append(m.Items, clone(m.Items[0]))
	}),
	celCase("", "create_questionnaire.unique_scoring_rule_names", "", func(m *eprov1.CreateQuestionnaireRequest) {
		m.ScoringRules = append(m.ScoringRules, clone(m.ScoringRules[0]))
	}),
	celCase("", "create_questionnaire.unique_alert_rule_names", "", func(m *eprov1.CreateQuestionnaireRequest) {
		m.AlertRules = append(m.AlertRules, clone(m.AlertRules[0]))
	}),
	celCase("", "create_questionnaire.alert_scoring_rule_exists", "", func(m *eprov1.CreateQuestionnaireRequest) {
		m.AlertRules[1].GetTotalScore().ScoringRuleName = "no_such_total"
	}),
	celCase("", "import_fhir_questionnaire.unique_scoring_rule_names", "", func(m *eprov1.ImportFhirQuestionnaireRequest) {
		m.ScoringRules = append(m.ScoringRules, clone(m.ScoringRules[0]))
	}),
	celCase("", "import_fhir_questionnaire.unique_alert_rule_names", "", func(m *eprov1.ImportFhirQuestionnaireRequest) {
		m.AlertRules = append(m.AlertRules, clone(m.AlertRules[0]))
	}),
	celCase("", "import_fhir_questionnaire.alert_scoring_rule_exists", "", func(m *eprov1.ImportFhirQuestionnaireRequest) {
		m.AlertRules[0].GetTotalScore().ScoringRuleName = "no_such_total"
	}),
	celCase("", "questionnaire_item.text_required", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].Text = ""
	}),
	celCase("", "questionnaire_item.group_has_items", "items[2]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[2].Items = nil
	}),
	celCase("", "questionnaire_item.group_no_repeats", "items[2]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[2].Repeats = true
	}),
	celCase("", "questionnaire_item.display_not_answerable", "items[3]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items = append(m.Items, &eprov1.QuestionnaireItem{
			LinkId: "intro", Text: "Think about the last two weeks.", Type: eprov1.ItemType_ITEM_TYPE_DISPLAY, Required: true,
		})
	}),
	celCase("", "questionnaire_item.options_only_for_choice", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].AnswerOptions = []*eprov1.AnswerOption{clone(m.Items[0].AnswerOptions[1])}
	}),
	celCase("", "questionnaire_item.choice_has_options", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].AnswerOptions = nil
	}),
	celCase("", "questionnaire_item.max_length_only_for_text", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].MaxLength = 10
	}),
	celCase("", "questionnaire_item.min_value_type", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].MinValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDecimal{ValueDecimal: "0.5"}}
	}),
	celCase("", "questionnaire_item.max_value_type", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].MaxValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDate{ValueDate: "2025-01-01"}}
	}),
	celCase("", "questionnaire_item.min_value_lte_max_value", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].MinValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: 15}}
	}),
	// The rule has one branch per bound type; decimals compare as numbers ("10" > "2.5").
	celCase("", "questionnaire_item.min_value_lte_max_value", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].Type = eprov1.ItemType_ITEM_TYPE_DECIMAL
		m.Items[1].MinValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDecimal{ValueDecimal: "10"}}
		m.Items[1].MaxValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDecimal{ValueDecimal: "2.5"}}
	}),
	celCase("", "questionnaire_item.min_value_lte_max_value", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].Type = eprov1.ItemType_ITEM_TYPE_DATE
		m.Items[1].MinValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDate{ValueDate: "2025-02-01"}}
		m.Items[1].MaxValue = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDate{ValueDate: "2025-01-31"}}
	}),
	celCase("", "questionnaire_item.enable_behavior_required", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].EnableBehavior = eprov1.EnableBehavior_ENABLE_BEHAVIOR_UNSPECIFIED
	}),
	celCase("", "questionnaire_item.enable_when_not_self", "items[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].EnableWhen[0].QuestionLinkId = m.Items[1].LinkId
	}),
	celCase("", "questionnaire_item.unit_only_for_quantity", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].Unit = &eprov1.Coding{System: "http://unitsofmeasure.org", Code: "kg"}
	}),
	celCase("", "questionnaire_item.age_integer_only", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].Age = true
	}),
	celCase("", "questionnaire_item.unique_translation_languages", "items[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].TextTranslations = append(m.Items[0].TextTranslations, clone(m.Items[0].TextTranslations[0]))
	}),
	celCase("", "questionnaire_item.unique_child_link_ids", "items[2]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[2].Items = append(m.Items[2].Items, clone(m.Items[2].Items[0]))
	}),
	oneofCase("", "trialhub.epro.v1.AnswerOption.value", "items[0].answer_options[0].value", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[0].AnswerOptions[0].Value = nil
	}),
	celCase("", "enable_when.exists_takes_boolean", "items[1].enable_when[1]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].EnableWhen[1].Answer = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: 1}}
	}),
	celCase("", "enable_when.ordered_answer", "items[1].enable_when[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.Items[1].EnableWhen[0].Answer = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueBoolean{ValueBoolean: true}}
	}),
	celCase("", "scoring_rule.bands_disjoint", "scoring_rules[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.ScoringRules[0].Bands[1].Min = 4
	}),
	celCase("", "severity_band.min_lte_max", "scoring_rules[0].bands[0]", func(m *eprov1.CreateQuestionnaireRequest) {
		m.ScoringRules[0].Bands[0].Min, m.ScoringRules[0].Bands[0].Max = 4, 0
	}),
	oneofCase("", "trialhub.epro.v1.AlertRule.trigger", "alert_rules[0].trigger", func(m *eprov1.CreateQuestionnaireRequest) {
		m.AlertRules[0].Trigger = nil
	}),
	oneofCase("", "trialhub.epro.v1.GetQuestionnaireRequest.lookup", "lookup", func(m *eprov1.GetQuestionnaireRequest) {
		m.Lookup = nil
	}),

	// trialhub.epro.v1: responses
	celCase("", "submit_response.unique_link_ids", "", func(m *eprov1.SubmitResponseRequest) {
		m.Answers = append(m.Answers, clone(m.Answers[0]))
	}),
	celCase("", "submit_response.authored_at_not_future", "authored_at", func(m *eprov1.SubmitResponseRequest) {
		m.AuthoredAt = inAnHour()
	}),
	oneofCase("", "trialhub.epro.v1.AnswerValue.value", "answers[1].values[0].value", func(m *eprov1.SubmitResponseRequest) {
		m.Answers[1].Values[0].Value = nil
	}),
	celCase("", "amend_response.answers_match_action", "", func(m *eprov1.AmendResponseRequest) {
		m.Action = eprov1.AmendAction_AMEND_ACTION_MARK_ENTERED_IN_ERROR
	}),
	celCase("", "amend_response.answers_match_action", "", func(m *eprov1.AmendResponseRequest) {
		m.Answers = nil
	}),
	celCase("", "amend_response.unique_link_ids", "", func(m *eprov1.AmendResponseRequest) {
		m.Answers = append(m.Answers, clone(m.Answers[0]))
	}),
	celCase("", "list_responses.one_questionnaire_filter", "", func(m *eprov1.ListResponsesRequest) {
		m.QuestionnaireUrl = "https://trialhub.example/fhir/Questionnaire/phq-9"
	}),
	celCase("", "export_responses.one_questionnaire_filter", "", func(m *eprov1.ExportResponsesRequest) {
		m.QuestionnaireId = questionnaireID
	}),

	// trialhub.notification.v1
	celCase("reminder", "send_notification.expires_after_not_before", "", func(m *notificationv1.SendNotificationRequest) {
		m.ExpiresAt = timestamppb.New(m.NotBefore.AsTime().Add(-time.Minute))
	}),
	celCase("alert", "send_notification.alert_to_staff", "", func(m *notificationv1.SendNotificationRequest) {
		m.Recipient = &notificationv1.Recipient{Target: &notificationv1.Recipient_SubjectUuid{SubjectUuid: m.AboutSubjectUuid}}
	}),
	celCase("alert", "send_notification.alert_about_subject", "", func(m *notificationv1.SendNotificationRequest) {
		m.AboutSubjectUuid = ""
	}),
	celCase("reminder", "send_notification.about_subject_matches_recipient", "", func(m *notificationv1.SendNotificationRequest) {
		m.AboutSubjectUuid = otherSubjectID
	}),
	celCase("reminder", "send_notification.template_parameters_unique", "", func(m *notificationv1.SendNotificationRequest) {
		m.TemplateParameters = append(m.TemplateParameters, &notificationv1.TemplateParameter{
			Name: m.TemplateParameters[0].Name, Value: &notificationv1.TemplateParameter_Hours{Hours: 3}})
	}),
	celCase("alert", "send_notification.staff_in_trial", "", func(m *notificationv1.SendNotificationRequest) {
		m.TrialId = ""
	}),
	oneofCase("reminder", "trialhub.notification.v1.TemplateParameter.value", "template_parameters[0].value", func(m *notificationv1.SendNotificationRequest) {
		m.TemplateParameters[0].Value = nil
	}),
	oneofCase("reminder", "trialhub.notification.v1.Recipient.target", "recipient.target", func(m *notificationv1.SendNotificationRequest) {
		m.Recipient = &notificationv1.Recipient{}
	}),
	oneofCase("alert", "trialhub.notification.v1.StaffRecipient.target", "recipient.staff.target", func(m *notificationv1.SendNotificationRequest) {
		m.Recipient.GetStaff().Target = nil
	}),
	celCase("", "list_notifications.created_range", "", func(m *notificationv1.ListNotificationsRequest) {
		m.CreatedUntil = m.CreatedFrom
	}),
	oneofCase("", "trialhub.notification.v1.CancelNotificationRequest.target", "target", func(m *notificationv1.CancelNotificationRequest) {
		m.Target = nil
	}),
}

// TestCELAndOneofRules breaks each CEL and oneof rule of the contract on its own
// and expects exactly its violation, with its rule id and field path.
func TestCELAndOneofRules(t *testing.T) {
	v := newValidator(t)
	covered := make(map[string]bool)
	for _, c := range ruleCases {
		msg := c.build(t)
		name := fmt.Sprintf("%s/%s", msg.ProtoReflect().Descriptor().Name(), c.rule)
		got := violations(t, v, msg)
		want := []violation{c.want}
		if !sameViolations(got, want) {
			t.Errorf("%s: got violations %v, want %v", name, got, want)
			continue
		}
		covered[c.rule] = true
	}

	cel, oneofs, err := contractRules(reachable(requestTypes(t)))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for id, where := range cel {
		if len(where) > 1 {
			t.Errorf("CEL rule id %s is used in %d places (%s): ids must name one rule", id, len(where), strings.Join(where, ", "))
		}
		if !covered[id] {
			missing = append(missing, fmt.Sprintf("CEL rule %s (%s)", id, where[0]))
		}
	}
	for _, o := range oneofs {
		if !covered[string(o)] {
			missing = append(missing, fmt.Sprintf("oneof rule of %s", o))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("rules without a case in ruleCases:\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("%d cases cover %d CEL rules and %d oneof rules", len(ruleCases), len(cel), len(oneofs))
}

func sameViolations(got, want []violation) bool {
	less := func(a, b violation) int { return strings.Compare(a.String(), b.String()) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	return slices.Equal(got, want)
}

// contractRules returns the CEL rules of messages (by id, with where each id is
// declared) and the oneofs with a rule.
func contractRules(messages []protoreflect.MessageDescriptor) (cel map[string][]string, oneofs []protoreflect.FullName, err error) {
	cel = make(map[string][]string)
	for _, md := range messages {
		mr, err := protovalidate.ResolveMessageRules(md)
		if err != nil {
			return nil, nil, fmt.Errorf("rules of %s: %w", md.FullName(), err)
		}
		for _, r := range mr.GetCel() {
			cel[r.GetId()] = append(cel[r.GetId()], string(md.FullName()))
		}
		for _, o := range mr.GetOneof() {
			oneofs = append(oneofs, protoreflect.FullName(fmt.Sprintf("%s.(%s)", md.FullName(), strings.Join(o.GetFields(), "|"))))
		}
		for i := range md.Oneofs().Len() {
			od := md.Oneofs().Get(i)
			if or, err := protovalidate.ResolveOneofRules(od); err != nil {
				return nil, nil, fmt.Errorf("rules of %s: %w", od.FullName(), err)
			} else if or.GetRequired() {
				oneofs = append(oneofs, od.FullName())
			}
		}
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			fr, err := protovalidate.ResolveFieldRules(fd)
			if err != nil {
				return nil, nil, fmt.Errorf("rules of %s: %w", fd.FullName(), err)
			}
			rules := append(slices.Clone(fr.GetCel()), fr.GetRepeated().GetItems().GetCel()...)
			rules = append(rules, fr.GetMap().GetKeys().GetCel()...)
			rules = append(rules, fr.GetMap().GetValues().GetCel()...)
			for _, r := range rules {
				cel[r.GetId()] = append(cel[r.GetId()], string(fd.FullName()))
			}
		}
	}
	return cel, oneofs, nil
}
