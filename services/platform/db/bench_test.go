package db_test

import (
	"context"
	"fmt"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/trialhub/trialhub/services/platform/db"
)

// BenchmarkInsert writes one realistic row (uuid, status, JSON payload, indexes)
// per InTx from 8 parallel writers (4 per CPU on the 2-CPU machines the figures in
// the package doc come from), through each PostgreSQL driver and SQLite.
//
//	go test -run '^$' -bench BenchmarkInsert -benchtime 3s ./db/
func BenchmarkInsert(b *testing.B) {
	for _, be := range allBackends {
		b.Run(be.name, func(b *testing.B) {
			d := be.open(b)
			ctx := context.Background()
			ddl := `CREATE TABLE response (
				id bigserial PRIMARY KEY,
				subject_uuid uuid NOT NULL,
				questionnaire text NOT NULL,
				status text NOT NULL,
				answers jsonb NOT NULL,
				submitted_at timestamptz NOT NULL DEFAULT now());
				CREATE INDEX response_subject ON response (subject_uuid, submitted_at)`
			ins := `INSERT INTO response (subject_uuid, questionnaire, status, answers) VALUES ($1, $2, $3, $4) RETURNING id`
			if d.Dialect() == dialect.SQLite {
				ddl = `CREATE TABLE response (
				id integer PRIMARY KEY AUTOINCREMENT,
				subject_uuid text NOT NULL,
				questionnaire text NOT NULL,
				status text NOT NULL,
				answers text NOT NULL,
				submitted_at datetime NOT NULL DEFAULT CURRENT_TIMESTAMP);
				CREATE INDEX response_subject ON response (subject_uuid, submitted_at)`
				ins = `INSERT INTO response (subject_uuid, questionnaire, status, answers) VALUES (?, ?, ?, ?) RETURNING id`
			}
			if _, err := d.SQL().ExecContext(ctx, ddl); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
						var id int64
						return tx.QueryRowContext(ctx, ins, uuid.NewString(), "PHQ-9", "SUBMITTED",
							fmt.Sprintf(`{"q1":%d,"q2":2,"q3":1,"note":"slept badly"}`, i%4)).Scan(&id)
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		})
	}
}
