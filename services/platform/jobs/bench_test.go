package jobs

import (
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/riverqueue/river"

	"github.com/trialhub/trialhub/services/platform/db"
)

// benchWriters is the number of concurrent writers in BenchmarkInsertTx, as in
// the measurement.
const benchWriters = 8

// BenchmarkInsertTx measures committed transactions per second with benchWriters
// concurrent writers: a plain row insert alone, and the same row plus a job
// inserted with InsertTx, on PostgreSQL through lib/pq and through pgx's
// database/sql driver, and on SQLite. Compare row with row+job within a driver
// (the cost of the outbox) and the drivers with each other (ratios, not absolute
// figures).
func BenchmarkInsertTx(b *testing.B) {
	for _, be := range backends {
		for _, withJob := range []bool{false, true} {
			name := be.name + "/row"
			if withJob {
				name += "+job"
			}
			b.Run(name, func(b *testing.B) {
				e := be.open(b)
				q := e.migrated(b, nil)
				ddl := `CREATE TABLE bench_rows (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL)`
				if e.dialect == dialect.SQLite {
					ddl = `CREATE TABLE bench_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)`
				}
				if _, err := e.pool.ExecContext(b.Context(), ddl); err != nil {
					b.Fatal(err)
				}
				insert := "INSERT INTO bench_rows (name) VALUES (" + e.ph(1) + ")"
				b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					i := 0
					for pb.Next() {
						i++
						err := e.inTx(ctx, func(ctx context.Context, tx *db.Tx) error {
							if _, err := tx.ExecContext(ctx, insert, "visit"); err != nil {
								return err
							}
							if withJob {
								_, err := q.InsertTx(ctx, tx, notifyArgs{Item: i}, nil)
								return err
							}
							return nil
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
}

// BenchmarkStartLatency measures commit-to-work: the time from a transaction's
// commit returning to its job's worker starting, one job at a time, with the
// Queue's default fetch settings, River's own defaults (100 ms cooldown, 1 s poll)
// for comparison, and a pgx LISTEN connection. Jobs arrive at random moments
// (0-60 ms apart), one at a time. It reports the median and the 90th percentile in
// milliseconds.
func BenchmarkStartLatency(b *testing.B) {
	cases := []struct {
		name    string
		backend string
		opts    []Option
	}{
		{"postgres-libpq/kit-defaults", "postgres-libpq", nil},
		{"postgres-libpq/river-defaults", "postgres-libpq", []Option{WithFetch(100*time.Millisecond, time.Second)}},
		{"postgres-libpq/listener", "postgres-libpq", nil}, // listener added below
		{"postgres-pgx/listener", "postgres-pgx", nil},     // the env listens already
		{"sqlite/kit-defaults", "sqlite", nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			i := slices.IndexFunc(backends, func(be struct {
				name string
				open func(t testing.TB) *env
			}) bool {
				return be.name == c.backend
			})
			e := backends[i].open(b)
			opts := c.opts
			if c.name == "postgres-libpq/listener" {
				opts = append(opts, WithListener(e.dsn))
			}
			workers := river.NewWorkers()
			started := make(chan time.Time, 1)
			river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[notifyArgs]) error {
				started <- time.Now()
				return nil
			}))
			q := e.migrated(b, workers, opts...)
			if err := q.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			// Let leader election and the listener settle before measuring.
			time.Sleep(500 * time.Millisecond)
			var lat []time.Duration
			b.ResetTimer()
			for n := range b.N {
				// Jobs arrive at random moments, not in step with the poll.
				b.StopTimer()
				time.Sleep(rand.N(60 * time.Millisecond))
				b.StartTimer()
				if err := e.inTx(b.Context(), func(ctx context.Context, tx *db.Tx) error {
					_, err := q.InsertTx(ctx, tx, notifyArgs{Item: n}, nil)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				lat = append(lat, (<-started).Sub(committed))
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.5), "p50_ms")
			b.ReportMetric(ms(0.9), "p90_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
