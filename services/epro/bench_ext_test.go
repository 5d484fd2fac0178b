package epro_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/trialhub/trialhub/services/epro"
	"github.com/trialhub/trialhub/services/platform/db"
)

// plans inserts n planned visits of the fixture's subject straight into the
// local copy (the poller's table), so the benchmarks time only submissions.
func plans(b *testing.B, f *fixture, d *db.DB, n int) []string {
	b.Helper()
	now := time.Now().UTC()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		if _, err := d.SQL().ExecContext(context.Background(), `INSERT INTO subject_visits (id, trial_id, site_id, subject_uuid,
			enrollment_id, visit_code, visit_name, window_opens_at, window_closes_at, status, questionnaire_ids, trial_updated_at)
			VALUES ($1, $2, $3, $4, $5, 'W04', 'Week 4', $6, $7, 'PENDING', $8, $9)`,
			ids[i], f.trial.trialID, siteID, f.subject, uuid.NewString(), now.Add(-time.Hour), now.Add(time.Hour),
			fmt.Sprintf(`[%q]`, f.phq9.GetQuestionnaireId()), now); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkSubmitResponse is one PHQ-9 submission end to end on PostgreSQL over
// gRPC: authentication, validation, the answer check and scoring, then one
// transaction with the idempotency record, the response row, the audit event
// and the visit-completion job.
func BenchmarkSubmitResponse(b *testing.B) {
	f := setup(b)
	d := f.env.DB(b)
	visits := plans(b, f, d, b.N)
	answers := phq9Answers(b, total(12))
	now := time.Now().UTC()
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.submit(context.Background(), fmt.Sprintf("bench-submit-%08d", i), visits[i], now, answers); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainInsert inserts the same response row in its own transaction,
// without the kit (no RPC, idempotency, audit or job): the baseline of the
// ratio BenchmarkSubmitResponse / BenchmarkPlainInsert.
func BenchmarkPlainInsert(b *testing.B) {
	f := setup(b)
	d := f.env.DB(b)
	visits := plans(b, f, d, b.N)
	answers, err := epro.MarshalAnswers(phq9Answers(b, total(12)))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	b.ResetTimer()
	for i := range b.N {
		id := uuid.NewString()
		if err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO responses (id, response_id, revision, current, trial_id, site_id,
				subject_uuid, subject_visit_id, questionnaire_id, status, answers, scores, fired_alerts, authored_at,
				received_at, late, protocol_deviation, author_role)
				VALUES ($1, $2, 1, true, $3, $4, $5, $6, $7, 'COMPLETED', $8, '{}', '[]', $9, $9, false, false, 'ROLE_PATIENT')`,
				id+"/1", id, f.trial.trialID, siteID, f.subject, visits[i], f.phq9.GetQuestionnaireId(), answers, now)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
