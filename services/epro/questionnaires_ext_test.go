package epro_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/proto"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/epro/internal/instruments"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func start(t *testing.T) (*platformtest.Env, eprov1connect.EproServiceClient) {
	t.Helper()
	env := platformtest.Start(t, epro.Platform(), platformtest.WithDSN(pgtest.New(t)))
	return env, eprov1connect.NewEproServiceClient(env.Client(t, platformtest.Admin()))
}

// dbs holds one database handle per environment: each DB(t) opens a pool.
var dbs sync.Map

func count(t testing.TB, env *platformtest.Env, query string, args ...any) int {
	t.Helper()
	d, ok := dbs.Load(env)
	if !ok {
		d, _ = dbs.LoadOrStore(env, env.DB(t))
	}
	var n int
	if err := d.(*db.DB).ReadSQL().QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func wantCode(t *testing.T, err error, code connect.Code, contains string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error = %v, want %v", err, code)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not name %q", err, contains)
	}
}

func TestInstrumentsStoredAndReadBack(t *testing.T) {
	env, c := start(t)
	ctx := context.Background()
	for _, d := range instruments.All() {
		req := epro.SeedRequest(d)
		res, err := c.CreateQuestionnaire(ctx, req)
		if err != nil {
			t.Fatalf("create %s: %v", d.Canonical(), err)
		}
		got := res.GetQuestionnaire()
		if got.GetQuestionnaireId() == "" || got.GetStatus() != eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE || !got.GetShowScoresToPatient() {
			t.Fatalf("stored %s: id %q status %v show scores %v", d.Canonical(), got.GetQuestionnaireId(), got.GetStatus(), got.GetShowScoresToPatient())
		}
		// A retry with the same key returns the same version and writes nothing.
		again, err := c.CreateQuestionnaire(ctx, req)
		if err != nil || !proto.Equal(again.GetQuestionnaire(), got) {
			t.Fatalf("retry: %v, same %v", err, proto.Equal(again.GetQuestionnaire(), got))
		}
		// Another key for the same url|version is ALREADY_EXISTS.
		other := proto.Clone(req).(*eprov1.CreateQuestionnaireRequest)
		other.IdempotencyKey = "another-key-for-" + d.Name
		_, err = c.CreateQuestionnaire(ctx, other)
		wantCode(t, err, connect.CodeAlreadyExists, "questionnaire")
		// Pinned: by url|version and by the latest ACTIVE version of the url.
		for _, canon := range []*eprov1.QuestionnaireCanonical{{Url: d.URL, Version: d.Version}, {Url: d.URL}} {
			byCanon, err := c.GetQuestionnaire(ctx, &eprov1.GetQuestionnaireRequest{Lookup: &eprov1.GetQuestionnaireRequest_Canonical{Canonical: canon}})
			if err != nil || byCanon.GetQuestionnaire().GetQuestionnaireId() != got.GetQuestionnaireId() {
				t.Fatalf("get %v: %v", canon, err)
			}
		}
		if len(got.GetItems()) != len(req.GetItems()) || len(got.GetAlertRules()) != len(req.GetAlertRules()) {
			t.Fatalf("%s read back with %d items, %d alert rules", d.Name, len(got.GetItems()), len(got.GetAlertRules()))
		}
	}
	if n := count(t, env, `SELECT COUNT(*) FROM questionnaires`); n != 2 {
		t.Fatalf("%d questionnaire rows, want 2", n)
	}
	if n := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE action = 'QUESTIONNAIRE_CREATED'`); n != 2 {
		t.Fatalf("%d QUESTIONNAIRE_CREATED events, want 2", n)
	}
	list, err := c.ListQuestionnaires(ctx, &eprov1.ListQuestionnairesRequest{PageSize: 1})
	if err != nil || len(list.GetQuestionnaires()) != 1 || list.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v", err)
	}
	page2, err := c.ListQuestionnaires(ctx, &eprov1.ListQuestionnairesRequest{PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(page2.GetQuestionnaires()) != 1 || page2.GetNextPageToken() != "" ||
		page2.GetQuestionnaires()[0].GetUrl() == list.GetQuestionnaires()[0].GetUrl() {
		t.Fatalf("page 2: %v", err)
	}
	_, err = c.ListQuestionnaires(ctx, &eprov1.ListQuestionnairesRequest{PageToken: "bogus"})
	wantCode(t, err, connect.CodeInvalidArgument, "page_token")
}

func TestCreateRefusesInvalidDefinition(t *testing.T) {
	env, c := start(t)
	req := epro.SeedRequest(instruments.PHQ9())
	req.IdempotencyKey = "invalid-definition-1"
	// A scoring rule over an item that does not exist: the domain's Validate names it.
	req.ScoringRules[0].LinkIds = append(req.ScoringRules[0].LinkIds, "no-such-item")
	_, err := c.CreateQuestionnaire(context.Background(), req)
	wantCode(t, err, connect.CodeInvalidArgument, "scoring_rules[0]")
	if n := count(t, env, `SELECT COUNT(*) FROM questionnaires`); n != 0 {
		t.Fatalf("%d rows after a refused create", n)
	}
}

func TestStatusTransitions(t *testing.T) {
	env, c := start(t)
	ctx := context.Background()
	req := epro.SeedRequest(instruments.GAD7())
	req.Status = eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_DRAFT
	created, err := c.CreateQuestionnaire(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetQuestionnaire().GetQuestionnaireId()
	// A draft is not the latest ACTIVE version of its url.
	_, err = c.GetQuestionnaire(ctx, &eprov1.GetQuestionnaireRequest{Lookup: &eprov1.GetQuestionnaireRequest_Canonical{Canonical: &eprov1.QuestionnaireCanonical{Url: req.GetUrl()}}})
	wantCode(t, err, connect.CodeNotFound, "questionnaire")
	set := func(key string, st eprov1.QuestionnaireStatus) (*eprov1.SetQuestionnaireStatusResponse, error) {
		return c.SetQuestionnaireStatus(ctx, &eprov1.SetQuestionnaireStatusRequest{
			IdempotencyKey: key, QuestionnaireId: id, Status: st, Reason: "Reviewed by the study team"})
	}
	if res, err := set("status-active-0001", eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE); err != nil ||
		res.GetQuestionnaire().GetStatus() != eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE {
		t.Fatalf("draft -> active: %v", err)
	}
	if _, err := set("status-retired-001", eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_RETIRED); err != nil {
		t.Fatalf("active -> retired: %v", err)
	}
	_, err = set("status-active-0002", eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE)
	wantCode(t, err, connect.CodeFailedPrecondition, "RETIRED")
	var cerr *connect.Error
	if !errors.As(err, &cerr) || len(cerr.Details()) != 1 {
		t.Fatalf("no typed detail on %v", err)
	}
	detail := &eprov1.PreconditionFailure{}
	if err := proto.Unmarshal(cerr.Details()[0].Value, detail); err != nil ||
		detail.GetReason() != eprov1.PreconditionReason_PRECONDITION_REASON_STATUS_TRANSITION_NOT_ALLOWED {
		t.Fatalf("detail %v: %v", detail, err)
	}
	_, err = c.SetQuestionnaireStatus(ctx, &eprov1.SetQuestionnaireStatusRequest{IdempotencyKey: "status-unknown-01",
		QuestionnaireId: "00000000-0000-4000-8000-000000000000", Status: eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE, Reason: "Reviewed by the team"})
	wantCode(t, err, connect.CodeNotFound, "questionnaire")
	if n := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE action = 'QUESTIONNAIRE_STATUS_CHANGED'`); n != 2 {
		t.Fatalf("%d status events, want 2", n)
	}
	events, err := c.ListAuditEvents(ctx, &eprov1.ListAuditEventsRequest{RecordType: eprov1.AuditRecordType_AUDIT_RECORD_TYPE_QUESTIONNAIRE,
		RecordId: id, Actions: []eprov1.AuditAction{eprov1.AuditAction_AUDIT_ACTION_QUESTIONNAIRE_STATUS_CHANGED}})
	if err != nil || len(events.GetEvents()) != 2 || events.GetEvents()[1].GetNewValue() != "RETIRED" || events.GetEvents()[0].GetReason() == "" {
		t.Fatalf("audit events: %v %v", events, err)
	}
	verified, err := c.VerifyAuditTrail(ctx, &eprov1.VerifyAuditTrailRequest{})
	if err != nil || !verified.GetIntact() || verified.GetEventsChecked() != 3 {
		t.Fatalf("verify: %v %v", verified, err)
	}
}

func TestImportFhirPHQ9(t *testing.T) {
	env, c := start(t)
	ctx := context.Background()
	doc, err := os.ReadFile("internal/fhir/testdata/phq9.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ImportFhirQuestionnaire(ctx, &eprov1.ImportFhirQuestionnaireRequest{
		IdempotencyKey: "import-phq9-loinc", QuestionnaireJson: string(doc)})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	got := res.GetQuestionnaire()
	if got.GetQuestionnaireId() == "" || got.GetUrl() != "http://loinc.org/q/44249-1" || len(got.GetItems()) == 0 {
		t.Fatalf("imported %v", got)
	}
	unsupported, err := os.ReadFile("internal/fhir/testdata/unsupported.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportFhirQuestionnaire(ctx, &eprov1.ImportFhirQuestionnaireRequest{
		IdempotencyKey: "import-unsupported", QuestionnaireJson: string(unsupported)})
	wantCode(t, err, connect.CodeInvalidArgument, "questionnaire_json")
	if n := count(t, env, `SELECT COUNT(*) FROM questionnaires`); n != 1 {
		t.Fatalf("%d rows, want only the imported PHQ-9", n)
	}
}

func TestPatientCannotReadStaffView(t *testing.T) {
	env, admin := start(t)
	ctx := context.Background()
	created, err := admin.CreateQuestionnaire(ctx, epro.SeedRequest(instruments.PHQ9()))
	if err != nil {
		t.Fatal(err)
	}
	patient := eprov1connect.NewEproServiceClient(env.Client(t, platformtest.Patient()))
	_, err = patient.GetQuestionnaire(ctx, &eprov1.GetQuestionnaireRequest{Lookup: &eprov1.GetQuestionnaireRequest_QuestionnaireId{
		QuestionnaireId: created.GetQuestionnaire().GetQuestionnaireId()}})
	wantCode(t, err, connect.CodePermissionDenied, "")
	_, err = patient.ListQuestionnaires(ctx, &eprov1.ListQuestionnairesRequest{})
	wantCode(t, err, connect.CodePermissionDenied, "")
}

// TestSQLiteDevStack: the dev stack runs the service on embedded SQLite; its
// migrations apply and the seed's instruments store and read back there too.
func TestSQLiteDevStack(t *testing.T) {
	env := platformtest.Start(t, epro.Platform(), platformtest.WithSQLite())
	c := eprov1connect.NewEproServiceClient(env.Client(t, platformtest.Admin()))
	ctx := context.Background()
	for _, d := range instruments.All() {
		if _, err := c.CreateQuestionnaire(ctx, epro.SeedRequest(d)); err != nil {
			t.Fatalf("create %s: %v", d.Canonical(), err)
		}
	}
	list, err := c.ListQuestionnaires(ctx, &eprov1.ListQuestionnairesRequest{})
	if err != nil || len(list.GetQuestionnaires()) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
}
