package epro_test

import (
	"context"
	"testing"
	"time"

	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

// Submissions are counted by questionnaire and outcome, quarantined ones by
// reason too; a replayed idempotency key is not counted again.
func TestSubmissionMetrics(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	answers := phq9Answers(t, total(3))
	open := f.visit(t, now.Add(-time.Hour), now.Add(time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	closed := f.visit(t, now.Add(-3*time.Hour), now.Add(-time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	closed2 := f.visit(t, now.Add(-3*time.Hour), now.Add(-time.Hour), trialv1.SubjectVisitStatus_SUBJECT_VISIT_STATUS_PENDING)
	for _, s := range []struct {
		key, visit string
		authored   time.Time
	}{
		{"metrics-accepted-01", open, now},
		{"metrics-accepted-01", open, now}, // a retry: the first answer again
		{"metrics-late-000001", closed, now.Add(-2 * time.Hour)},
		{"metrics-closed-0001", closed2, now.Add(-30 * time.Minute)}, // authored after it closed
	} {
		if _, err := f.submit(ctx, s.key, s.visit, s.authored, answers); err != nil {
			t.Fatalf("%s: %v", s.key, err)
		}
	}
	phq9 := map[string]string{"questionnaire": f.phq9.GetUrl(), "version": f.phq9.GetVersion()}
	for outcome, want := range map[string]float64{"accepted": 1, "late": 1, "quarantined": 1} {
		labels := map[string]string{"outcome": outcome}
		for k, v := range phq9 {
			labels[k] = v
		}
		if v, _ := platformtest.Metric(t, f.env.URL, "epro_submissions_total", labels); v != want {
			t.Errorf("epro_submissions_total%v = %v, want %v", labels, v, want)
		}
	}
	if v, _ := platformtest.Metric(t, f.env.URL, "epro_quarantined_submissions_total", map[string]string{"reason": "WINDOW_CLOSED"}); v != 1 {
		t.Errorf("epro_quarantined_submissions_total{reason=WINDOW_CLOSED} = %v, want 1", v)
	}
}
