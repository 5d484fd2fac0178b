package stack_test

// A running dev stack observed the way an operator would: its JSON logs through
// the production redaction layer at DEBUG, its spans exported over OTLP/HTTP to
// an in-test collector (OTEL_EXPORTER_OTLP_ENDPOINT, as the README tells), its
// /metrics scraped; and one patient's whole journey through it (patientFlow).
// The observability tests (observability_ext_test.go) assert on what that flow
// leaves behind. When the notification service is mounted in the stack, its
// deliveries are added to flowDeliveries and its PII (device tokens) to the
// flow's secrets.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai for the demo site's calendar

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	notificationv1 "github.com/trialhub/trialhub/gen/go/trialhub/notification/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/notification/v1/notificationv1connect"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/patient"
	"github.com/trialhub/trialhub/services/platform/logs"
	"github.com/trialhub/trialhub/services/stack"
	"github.com/trialhub/trialhub/services/trial"
)

// delivery is one asynchronous hop of the flow: a River job of one service that
// calls another service's procedure, and the job that procedure enqueues in
// turn, if any.
type delivery struct {
	job       string // River kind; its span is "river.work/<kind>"
	procedure string // the procedure it calls
	then      string // the River kind of the job the procedure enqueues ("" for none)
}

// flowDeliveries are the jobs a submission causes in the stack: the visit
// completion for the trial service, and the safety alert (PHQ-9 item 9 above 0)
// for the notification service, whose delivery job pushes it to the vendor.
var flowDeliveries = []delivery{
	{job: "epro.record_completion", procedure: trialv1connect.TrialServiceRecordVisitCompletionProcedure},
	{job: "epro.safety_alert", procedure: notificationv1connect.NotificationServiceSendNotificationProcedure, then: "notification.deliver"},
}

// syncBuffer is a log sink shared by the stack's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// otlpSink is an OTLP/HTTP traces receiver: what a collector would get.
type otlpSink struct {
	URL   string
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   bytes.Buffer // every span as protojson, for the PII scan
}

func newOTLPSink(t *testing.T) *otlpSink {
	s := &otlpSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(raw, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				s.spans = append(s.spans, ss.GetSpans()...)
			}
		}
		s.raw.WriteString(protojson.Format(req))
		s.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *otlpSink) all() []*tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*tracepb.Span(nil), s.spans...)
}

func (s *otlpSink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// observed is a running dev stack and what it emits.
type observed struct {
	base, data string
	admin      string // the banner's admin token
	logs       *syncBuffer
	spans      *otlpSink
	redacted   func() []string // "key:reason" of every value the redaction layer refused
	stop       func()          // stops the stack (flushing its spans); idempotent
}

// startObserved runs the dev stack exporting spans to an in-test OTLP receiver,
// logging at DEBUG through the redaction layer, polling the trial worklist
// every 200 ms. Not parallel: it sets the process environment.
func startObserved(t *testing.T) *observed {
	t.Helper()
	sink := newOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: spans arrive while the flow runs
	poll := epro.PollEvery
	epro.PollEvery = 200 * time.Millisecond
	t.Cleanup(func() { epro.PollEvery = poll })

	buf := &syncBuffer{}
	var mu sync.Mutex
	var redacted []string
	log := slog.New(logs.NewHandler(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		logs.WithOnRedact(func(key, reason string) {
			mu.Lock()
			redacted = append(redacted, key+":"+reason)
			mu.Unlock()
		})))
	data := t.TempDir()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- stack.Dev(ctx, stack.Config{Addr: "127.0.0.1:0", Data: data, Web: t.TempDir(), Out: out, Log: log,
			Ready: func(a string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("dev stack did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev stack did not start")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("dev stack stopped with %v", err)
			}
		})
	}
	t.Cleanup(stop)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return &observed{
		base: "http://" + addr, data: data, admin: strings.TrimSpace(lines[len(lines)-1]),
		logs: buf, spans: sink, stop: stop,
		redacted: func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), redacted...) },
	}
}

// client is a Connect-protocol client of the stack calling with token ("" for
// anonymous), as the browser app does.
func (o *observed) client(token string) *connect.Client {
	var interceptors []connect.ClientInterceptor
	if token != "" {
		interceptors = append(interceptors, bearer(token))
	}
	return connect.NewClient(connecthttp.NewTransport(http.DefaultClient, o.base), interceptors...)
}

func bearer(token string) connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			ctx, info := connect.NewClientContext(ctx)
			info.RequestHeader().Set("Authorization", "Bearer "+token)
			return next(ctx, spec)
		}
	}
}

// flowResult is what one patient's journey used and made.
type flowResult struct {
	subject string
	// secrets are the personal data and credentials the flow used, by what they
	// are: none may appear in a log line, a span or a metric.
	secrets map[string]string
	// visit is the visit the patient answered.
	visit string
}

// patientFlow runs one patient's journey through the stack, as the apps do:
// the demo investigator signs in, invites a participant (the identity goes to
// the patient service), someone else self-registers (their code goes out by SMS
// through the vendor), the participant fails one sign-in, activates with the
// code and refreshes the session; the investigator enrolls them in the demo
// trial (screening due today); ePRO receives the visit plan from the trial
// worklist; the patient sends one malformed answer with free text (refused),
// then answers every questionnaire of the screening visit, and a second device
// sends the first one again (quarantined); ePRO's River job records the visit
// completion in the trial service.
func patientFlow(t *testing.T, o *observed) flowResult {
	t.Helper()
	ctx := context.Background()
	tag := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	res := flowResult{secrets: map[string]string{
		"full name":          "Mei Lin Quaxleworth",
		"family name":        "Quaxleworth",
		"national id":        "G" + strings.ToUpper(tag) + "Q",
		"mobile":             "+86139" + digits(tag, 8),
		"password":           "correct horse battery staple " + tag,
		"free-text answer":   "I have felt hopeless since the flood in Hangzhou " + tag,
		"wrong password":     "not my password " + tag,
		"admin access token": o.admin,
	}}
	res.secrets["mobile without country code"] = strings.TrimPrefix(res.secrets["mobile"], "+86")
	res.secrets["mobile without plus"] = strings.TrimPrefix(res.secrets["mobile"], "+")

	// The app checks the platform is up, as the web app does first.
	hc, err := http.Post(o.base+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	if err != nil || hc.StatusCode != http.StatusOK {
		t.Fatalf("health: %v %v", hc, err)
	}
	hc.Body.Close()

	// The demo trial and its Shanghai site.
	trials := trialv1connect.NewTrialServiceClient(o.client(o.admin))
	found, err := trials.ListTrials(ctx, &trialv1.ListTrialsRequest{Query: trial.DemoProtocol})
	if err != nil || len(found.GetTrials()) != 1 {
		t.Fatalf("find the demo trial: %v %v", found, err)
	}
	trialID := found.GetTrials()[0].GetTrialId()
	got, err := trials.GetTrial(ctx, &trialv1.GetTrialRequest{TrialId: trialID})
	if err != nil {
		t.Fatal(err)
	}
	var site *trialv1.Site
	for _, s := range got.GetSites() {
		if s.GetSiteCode() == "CN-SH-01" {
			site = s
		}
	}
	if site == nil {
		t.Fatalf("no CN-SH-01 site in %v", got.GetSites())
	}

	// The investigator signs in and invites the participant.
	auths := patientv1connect.NewAuthServiceClient(o.client(""))
	staff, err := auths.Login(ctx, &patientv1.LoginRequest{Identifier: &patientv1.LoginRequest_Username{Username: "investigator"}, Password: patient.DemoPassword})
	if err != nil {
		t.Fatalf("investigator login: %v", err)
	}
	invToken := staff.GetTokens().GetAccessToken()
	res.secrets["staff access token"] = invToken
	res.secrets["staff refresh token"] = staff.GetTokens().GetRefreshToken()
	// The investigator's phone registers for the site's safety alerts; its push
	// token identifies a device and lives only in the notification service.
	res.secrets["investigator push token"] = "fcm:flow-" + tag + "-APA91bQuaxle"
	if _, err := notificationv1connect.NewNotificationServiceClient(o.client(invToken)).RegisterDevice(ctx, &notificationv1.RegisterDeviceRequest{
		PushToken: res.secrets["investigator push token"], Platform: notificationv1.DevicePlatform_DEVICE_PLATFORM_ANDROID,
		AppVersion: "2.4.1", Locale: "zh-CN"}); err != nil {
		t.Fatalf("register the investigator's device: %v", err)
	}
	inv, err := patientv1connect.NewPatientServiceClient(o.client(invToken)).InviteParticipant(ctx, &patientv1.InviteParticipantRequest{
		FullName: res.secrets["full name"], NationalId: res.secrets["national id"], NationalIdCountry: "CN",
		Mobile: res.secrets["mobile"], SiteId: site.GetSiteId(), TrialId: trialID, IdempotencyKey: "flow-invite-" + tag,
	})
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	res.subject = inv.GetSubjectUuid()
	res.secrets["activation code"] = inv.GetActivationCode()

	// Someone else registers on their own: the code goes out by SMS through the
	// vendor, from a River job of the patient service.
	res.secrets["registrant name"] = "Jun Quaxleworth-Selfreg"
	res.secrets["registrant national id"] = "H" + strings.ToUpper(tag) + "R"
	res.secrets["registrant mobile"] = "+86137" + digits(tag[1:]+tag[:1], 8)
	res.secrets["registrant password"] = "another long passphrase " + tag
	if _, err := auths.Register(ctx, &patientv1.RegisterRequest{Mobile: res.secrets["registrant mobile"], Password: res.secrets["registrant password"],
		FullName: res.secrets["registrant name"], NationalId: res.secrets["registrant national id"], NationalIdCountry: "CN",
		IdempotencyKey: "flow-register-" + tag}); err != nil {
		t.Fatalf("register: %v", err)
	}
	eventually(t, "the registration SMS at the vendor", func() bool {
		code := smsCode(t, o, res.secrets["registrant mobile"])
		res.secrets["registration code"] = code
		return code != ""
	})

	// A mistyped password first, then the activation and a refresh.
	_, err = auths.Login(ctx, &patientv1.LoginRequest{Identifier: &patientv1.LoginRequest_Mobile{Mobile: res.secrets["mobile"]}, Password: res.secrets["wrong password"]})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("login with a wrong password: %v, want unauthenticated", err)
	}
	act, err := auths.ActivateAccount(ctx, &patientv1.ActivateAccountRequest{
		Identifier:     &patientv1.ActivateAccountRequest_Mobile{Mobile: res.secrets["mobile"]},
		ActivationCode: inv.GetActivationCode(), Password: res.secrets["password"], IdempotencyKey: "flow-activate-" + tag,
	})
	if err != nil {
		t.Fatalf("activate: %v", err)
	}
	res.secrets["patient refresh token (first)"] = act.GetSession().GetTokens().GetRefreshToken()
	refreshed, err := auths.RefreshToken(ctx, &patientv1.RefreshTokenRequest{RefreshToken: act.GetSession().GetTokens().GetRefreshToken()})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	access := refreshed.GetTokens().GetAccessToken()
	res.secrets["patient access token (first)"] = act.GetSession().GetTokens().GetAccessToken()
	res.secrets["patient access token"] = access
	res.secrets["patient refresh token"] = refreshed.GetTokens().GetRefreshToken()

	// Enrolled with the screening visit due today at the site.
	shanghai, err := time.LoadLocation(site.GetTimeZone())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trialv1connect.NewTrialServiceClient(o.client(invToken)).EnrollSubject(ctx, &trialv1.EnrollSubjectRequest{
		TrialId: trialID, SiteId: site.GetSiteId(), SubjectUuid: res.subject,
		EnrollmentDate: time.Now().In(shanghai).AddDate(0, 0, 7).Format(time.DateOnly), IdempotencyKey: "flow-enroll-" + tag,
	}); err != nil {
		t.Fatalf("enroll: %v", err)
	}

	// ePRO learns the plan from the trial worklist; the patient's due tasks appear.
	eproc := eprov1connect.NewEproServiceClient(o.client(access))
	var due []*eprov1.QuestionnaireTask
	eventually(t, "the patient's due tasks", func() bool {
		list, err := eproc.ListMyTasks(ctx, &eprov1.ListMyTasksRequest{})
		if err != nil {
			t.Fatalf("list my tasks: %v", err)
		}
		due = nil
		for _, task := range list.GetTasks() {
			if task.GetStatus() == eprov1.TaskStatus_TASK_STATUS_DUE {
				due = append(due, task)
			}
		}
		return len(due) > 0
	})
	res.visit = due[0].GetSubjectVisitId()
	var firstAnswers []*eprov1.ItemAnswer
	for i, task := range due {
		if task.GetSubjectVisitId() != res.visit {
			continue
		}
		q, err := eproc.GetMyQuestionnaire(ctx, &eprov1.GetMyQuestionnaireRequest{QuestionnaireId: task.GetQuestionnaire().GetQuestionnaireId()})
		if err != nil {
			t.Fatalf("questionnaire: %v", err)
		}
		answers := lowestAnswers(q.GetQuestionnaire().GetItems())
		if strings.Contains(task.GetQuestionnaire().GetQuestionnaireUrl(), "phq-9") {
			// Thoughts of self-harm on several days: the safety alert.
			raise(t, q.GetQuestionnaire().GetItems(), answers, "9")
		}
		req := &eprov1.SubmitResponseRequest{TrialId: task.GetTrialId(), SubjectVisitId: res.visit,
			QuestionnaireId: task.GetQuestionnaire().GetQuestionnaireId(), AuthoredAt: timestamppb.Now()}
		if i == 0 {
			// Free text where a choice is expected: refused, and the text goes nowhere.
			bad := proto.Clone(req).(*eprov1.SubmitResponseRequest)
			bad.IdempotencyKey = fmt.Sprintf("flow-bad-%s-%d", tag, i)
			bad.Answers = append([]*eprov1.ItemAnswer{{LinkId: answers[0].GetLinkId(), Values: []*eprov1.AnswerValue{
				{Value: &eprov1.AnswerValue_ValueString{ValueString: res.secrets["free-text answer"]}}}}}, answers[1:]...)
			if _, err := eproc.SubmitResponse(ctx, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("free text for a choice: %v, want invalid_argument", err)
			}
		}
		if i == 0 {
			firstAnswers = answers
		}
		req.IdempotencyKey = fmt.Sprintf("flow-submit-%s-%d", tag, i)
		req.Answers = answers
		if _, err := eproc.SubmitResponse(ctx, req); err != nil {
			t.Fatalf("submit %s: %v", task.GetQuestionnaire().GetQuestionnaireUrl(), err)
		}
	}

	// A second device sends the first questionnaire again: kept in the quarantine.
	again := &eprov1.SubmitResponseRequest{TrialId: due[0].GetTrialId(), SubjectVisitId: res.visit, IdempotencyKey: "flow-second-device-" + tag,
		QuestionnaireId: due[0].GetQuestionnaire().GetQuestionnaireId(), AuthoredAt: timestamppb.Now(), Answers: firstAnswers}
	if r, err := eproc.SubmitResponse(ctx, again); err != nil || r.GetQuarantined().GetReason() != eprov1.QuarantineReason_QUARANTINE_REASON_ALREADY_ANSWERED {
		t.Fatalf("second device: %v %v, want quarantined as already answered", r, err)
	}

	// The completion reaches the trial service through River.
	eventually(t, "the visit completion in the trial service", func() bool {
		plan, err := trialv1connect.NewTrialServiceClient(o.client(invToken)).GetSubjectVisitPlan(ctx,
			&trialv1.GetSubjectVisitPlanRequest{SubjectUuid: res.subject, TrialId: trialID})
		if err != nil {
			t.Fatalf("visit plan: %v", err)
		}
		for _, v := range plan.GetVisits() {
			if v.GetSubjectVisitId() == res.visit {
				return v.GetStatus() == trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_COMPLETED
			}
		}
		return false
	})
	// The safety alert reaches the investigator's phone through the notification
	// service's delivery job and the (fake) push vendor.
	eventually(t, "the safety alert delivered", func() bool {
		list, err := notificationv1connect.NewNotificationServiceClient(o.client(o.admin)).ListNotifications(ctx, &notificationv1.ListNotificationsRequest{
			SubjectUuid: res.subject, Kinds: []notificationv1.NotificationKind{notificationv1.NotificationKind_NOTIFICATION_KIND_ALERT}})
		if err != nil {
			t.Fatalf("list notifications: %v", err)
		}
		for _, n := range list.GetNotifications() {
			switch n.GetStatus() {
			case notificationv1.NotificationStatus_NOTIFICATION_STATUS_DELIVERED:
				return true
			case notificationv1.NotificationStatus_NOTIFICATION_STATUS_FAILED, notificationv1.NotificationStatus_NOTIFICATION_STATUS_DEAD:
				t.Fatalf("the safety alert ended %s: %s", n.GetStatus(), n.GetLastError())
			}
		}
		return false
	})
	return res
}

// raise answers the choice item linkID with its second option instead of its first.
func raise(t *testing.T, items []*eprov1.QuestionnaireItem, answers []*eprov1.ItemAnswer, linkID string) {
	t.Helper()
	var opt *eprov1.AnswerOption
	var walk func([]*eprov1.QuestionnaireItem)
	walk = func(items []*eprov1.QuestionnaireItem) {
		for _, it := range items {
			if it.GetLinkId() == linkID && len(it.GetAnswerOptions()) > 1 {
				opt = it.GetAnswerOptions()[1]
			}
			walk(it.GetItems())
		}
	}
	walk(items)
	if opt == nil {
		t.Fatalf("no choice item %s with two options", linkID)
	}
	for _, a := range answers {
		if a.GetLinkId() == linkID && opt.GetValueCoding() != nil {
			a.Values = []*eprov1.AnswerValue{{Value: &eprov1.AnswerValue_ValueCoding{ValueCoding: opt.GetValueCoding()}}}
			return
		}
		if a.GetLinkId() == linkID {
			a.Values = []*eprov1.AnswerValue{{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: opt.GetValueInteger()}}}
			return
		}
	}
	t.Fatalf("item %s is not answered", linkID)
}

// smsCode is the code in the last SMS the fake vendor accepted for mobile, ""
// when none arrived yet.
func smsCode(t *testing.T, o *observed, mobile string) string {
	t.Helper()
	res, err := http.Get(o.base + stack.FakeVendorPath + "/inbox?channel=sms&to=" + url.QueryEscape(mobile))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var msgs []struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(res.Body).Decode(&msgs); err != nil {
		t.Fatalf("inbox: %v", err)
	}
	if len(msgs) == 0 {
		return ""
	}
	code := activationCode.FindString(msgs[len(msgs)-1].Text)
	if code == "" {
		t.Fatalf("no code in the SMS %q", msgs[len(msgs)-1].Text)
	}
	return code
}

// activationCode is the shape of the SMS's one-time code.
var activationCode = regexp.MustCompile(`\b[0-9]{6}\b|\b[0-9A-HJKMNP-TV-Z]{8}\b`)

// lowestAnswers answers every choice item (nested ones too) with its first
// option: the lowest score, so no alert rule fires.
func lowestAnswers(items []*eprov1.QuestionnaireItem) []*eprov1.ItemAnswer {
	var out []*eprov1.ItemAnswer
	for _, it := range items {
		if it.GetType() == eprov1.ItemType_ITEM_TYPE_CHOICE && len(it.GetAnswerOptions()) > 0 && len(it.GetEnableWhen()) == 0 {
			opt := it.GetAnswerOptions()[0]
			var v *eprov1.AnswerValue
			switch {
			case opt.GetValueCoding() != nil:
				v = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueCoding{ValueCoding: opt.GetValueCoding()}}
			case opt.GetValueString() != "":
				v = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueString{ValueString: opt.GetValueString()}}
			default:
				v = &eprov1.AnswerValue{Value: &eprov1.AnswerValue_ValueInteger{ValueInteger: opt.GetValueInteger()}}
			}
			out = append(out, &eprov1.ItemAnswer{LinkId: it.GetLinkId(), Values: []*eprov1.AnswerValue{v}})
		}
		out = append(out, lowestAnswers(it.GetItems())...)
	}
	return out
}

// digits turns s into n decimal digits (a mobile number unique to the run).
func digits(s string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteByte('0' + s[i%len(s)]%10)
	}
	return b.String()
}

// eventually polls cond until it holds, failing after a generous bound: River
// works jobs in the background, so their effects are awaited, not timed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads the stack's /metrics with the Prometheus text parser.
func (o *observed) scrape(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	res, err := http.Get(o.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families, string(raw)
}

// sample is the sum of the series of a family whose labels include labels: a
// counter's or gauge's value, a histogram's count.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	sum, found := 0.0, false
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum, found
}
