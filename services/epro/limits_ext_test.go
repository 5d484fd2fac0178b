package epro_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// The contract's per-method caps: SubmitResponse takes at most 256 KiB, a
// request the field rules admit (answers of 4000 characters each) but larger
// is RESOURCE_EXHAUSTED naming the limit; just under it, it reaches the handler
// (which refuses the unknown items). A GET's message is measured before it is
// read.
func TestRequestCaps(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	visit := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	request := func(answers int) *eprov1.SubmitResponseRequest {
		req := &eprov1.SubmitResponseRequest{IdempotencyKey: "caps-" + uuid.NewString(), TrialId: f.trial.trialID, SubjectVisitId: visit,
			QuestionnaireId: f.phq9.GetQuestionnaireId(), AuthoredAt: timestamppb.New(now)}
		for i := range answers {
			req.Answers = append(req.Answers, &eprov1.ItemAnswer{LinkId: fmt.Sprintf("free-%03d", i),
				Values: []*eprov1.AnswerValue{{Value: &eprov1.AnswerValue_ValueString{ValueString: strings.Repeat("x", 4000)}}}})
		}
		return req
	}
	big, small := request(70), request(60)
	if n := proto.Size(big); n <= 262144 {
		t.Fatalf("the large request has %d bytes, not more than the cap", n)
	}
	if n := proto.Size(small); n >= 262144 {
		t.Fatalf("the small request has %d bytes, not less than the cap", n)
	}
	_, err := f.patient.SubmitResponse(ctx, big)
	wantCode(t, err, connect.CodeResourceExhausted, "max_request_bytes of 262144")
	_, err = f.patient.SubmitResponse(ctx, small)
	wantCode(t, err, connect.CodeInvalidArgument, "free-000")
	if n := count(t, f.env, `SELECT COUNT(*) FROM responses`) + count(t, f.env, `SELECT COUNT(*) FROM quarantines`); n != 0 {
		t.Fatalf("%d rows stored from refused requests", n)
	}

	// GetQuestionnaire takes 4096 bytes; a GET of more is refused before it is read.
	token := f.env.Token(t, platformtest.Admin())
	msg := `{"questionnaireId":"` + f.phq9.GetQuestionnaireId() + `"` + strings.Repeat(" ", 5000) + `}`
	req, err := http.NewRequest(http.MethodGet, f.env.URL+"/trialhub.epro.v1.EproService/GetQuestionnaire?encoding=json&message="+url.QueryEscape(msg), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("GET of %d bytes: HTTP %d, want 429 (resource_exhausted)", len(msg), res.StatusCode)
	}
	// The same request without the padding is answered.
	got := httpGet(t, f.env.URL+"/trialhub.epro.v1.EproService/GetQuestionnaire?encoding=json&message="+
		url.QueryEscape(`{"questionnaireId":"`+f.phq9.GetQuestionnaireId()+`"}`), token)
	if !strings.Contains(string(got), f.phq9.GetUrl()) {
		t.Fatalf("GetQuestionnaire by GET: %s", got)
	}
}
