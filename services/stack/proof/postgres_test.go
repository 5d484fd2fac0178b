package proof_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	_ "github.com/lib/pq" // the maintenance connection that creates the database

	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// TestProof8PostgresRestart: ePRO on a PostgreSQL server of its own, under
// submission load from patients who each keep a submission (and its
// idempotency key) until it is acknowledged, as the app does. The server is
// killed (a crash: every connection dropped) for a few seconds and started
// again on the same port and data. Nothing restarts ePRO.
//
// While the database is down every submission fails with unavailable, within
// the client's deadline (never a hang, never internal); once it is back,
// submissions succeed again; afterwards every acknowledged submission is
// there (GetMyResponse), each visit is answered once, and every outbox job
// (visit completion, safety alert) is delivered.
func TestProof8PostgresRestart(t *testing.T) {
	cluster := pgtest.Dedicated(t)
	dsn := createDatabase(t, cluster.URL, "epro_restart")
	w := newWorld(t, true)
	e := w.startEpro(t, dsn, "", nil)
	const deadline = 2 * time.Second // the client's deadline on each call
	workers := scaled(4, 8)
	before, outage, after := scaled(time.Second, 5*time.Second), scaled(2*time.Second, 8*time.Second), scaled(time.Second, 5*time.Second)
	patients := e.patients(t, workers, scaled(lean(150, 40), 400), deadline)
	a := answers(t, e.phq9, true)

	var mu sync.Mutex
	var calls []call
	acked := map[string]string{} // visit -> response id
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, p := range patients {
		wg.Go(func() {
			for n, visit := range p.visits {
				key := fmt.Sprintf("restart-%02d-%06d-submission", i, n)
				for { // the app keeps the submission until it is acknowledged
					if ctx.Err() != nil {
						return
					}
					start := time.Now()
					res, err := e.submit(context.Background(), p, visit, key, a)
					c := call{start: start, end: time.Now(), err: err}
					if err != nil {
						c.code = connect.CodeOf(err)
					}
					mu.Lock()
					calls = append(calls, c)
					if err == nil {
						acked[visit] = res.GetReceipt().GetResponseId()
					}
					mu.Unlock()
					if err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(before)
	downAt := time.Now()
	if err := cluster.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage)
	if err := cluster.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	// Recovery: wait for a submission acknowledged after the restart, then keep
	// the load on a while.
	eventually(t, "a submission acknowledged after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range calls {
			if c.code == 0 && c.start.After(upAt) {
				return true
			}
		}
		return false
	})
	recoveredAt := time.Now()
	time.Sleep(after)
	stop()
	wg.Wait()

	// Figures per phase, by when a call started.
	phases := []struct {
		name     string
		from, to time.Time
	}{
		{"before the restart", time.Time{}, downAt},
		{"database down", downAt, upAt},
		{"database back", upAt, recoveredAt},
		{"recovered", recoveredAt, time.Now()},
	}
	bad := map[connect.Code]int{}
	var slowest time.Duration
	var example error
	for _, ph := range phases {
		lat := &latencies{}
		ok, failed := 0, 0
		codes := map[string]int{}
		for _, c := range calls {
			if c.start.Before(ph.from) || !c.start.Before(ph.to) {
				continue
			}
			lat.add(c.end.Sub(c.start))
			if c.code == 0 {
				ok++
				continue
			}
			failed++
			codes[c.code.String()]++
			if c.code != connect.CodeUnavailable {
				bad[c.code]++
				example = c.err
			}
			slowest = max(slowest, c.end.Sub(c.start))
		}
		figures{phase: ph.name, submissions: ok + failed, ok: ok, failed: failed, p50: lat.q(0.5), p99: lat.q(0.99),
			extra: "codes=" + codesString(codes)}.log(t)
	}
	if len(bad) > 0 {
		t.Errorf("submissions failed with codes other than unavailable: %v, e.g. %v", bad, example)
	}
	if slowest >= deadline {
		t.Errorf("a failed submission took %v, the client's whole deadline of %v: it hung", slowest, deadline)
	}
	if n := countCalls(calls, downAt, upAt, connect.CodeUnavailable); n == 0 {
		t.Error("no submission failed while the database was down: the outage was not seen")
	}

	// Every acknowledged submission is stored, once per visit.
	var visits []string
	for _, p := range patients {
		for _, v := range p.visits {
			id, ok := acked[v]
			if !ok {
				continue
			}
			visits = append(visits, v)
			if _, err := p.epro.GetMyResponse(context.Background(), &eprov1.GetMyResponseRequest{ResponseId: id}); err != nil {
				t.Fatalf("acknowledged response %s of visit %s: %v", id, v, err)
			}
		}
	}
	rows := countRows(t, dsn, `SELECT count(*) FROM responses`)
	var delivered, duplicates, lost, alertsDelivered, alertDuplicates, alertsLost int
	eventually(t, "every acknowledged submission's jobs delivered", func() bool {
		delivered, duplicates, lost, _ = e.trial.completions.tally(visits)
		alertsDelivered, alertDuplicates, alertsLost, _ = w.alerts.alerts.tally(visits)
		return lost == 0 && alertsLost == 0
	})
	figures{phase: "after", submissions: len(visits), ok: len(visits), deliveries: delivered, duplicates: duplicates + alertDuplicates,
		losses: lost + alertsLost, extra: fmt.Sprintf("rows=%d alerts=%d outage=%v", rows, alertsDelivered, upAt.Sub(downAt).Round(time.Millisecond))}.log(t)
	if rows != len(visits) {
		t.Errorf("%d responses stored for %d acknowledged submissions", rows, len(visits))
	}
	if duplicates+alertDuplicates > 0 {
		t.Errorf("%d completions and %d alerts sent under two keys", duplicates, alertDuplicates)
	}
}

// createDatabase creates a database on a server and returns its DSN.
func createDatabase(t testing.TB, server, name string) string {
	t.Helper()
	admin, err := sql.Open("postgres", server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func countRows(t testing.TB, dsn, query string) int {
	t.Helper()
	d, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(errors.Join(fmt.Errorf("%s", query), err))
	}
	return n
}

// call is one submission as its client saw it.
type call struct {
	start, end time.Time
	code       connect.Code // 0 for success
	err        error
}

// countCalls counts the calls started in [from, to) that ended with code.
func countCalls(calls []call, from, to time.Time, code connect.Code) int {
	n := 0
	for _, c := range calls {
		if !c.start.Before(from) && c.start.Before(to) && c.code == code {
			n++
		}
	}
	return n
}

func codesString(codes map[string]int) string {
	var parts []string
	for c, n := range codes {
		parts = append(parts, fmt.Sprintf("%s:%d", c, n))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
