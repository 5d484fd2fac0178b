package audit_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	"github.com/trialhub/trialhub/services/platform/request"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a migrated database of each dialect, with an items table that
// audited writes insert into.
func open(t *testing.T) map[string]*db.DB {
	t.Helper()
	out := map[string]*db.DB{}
	for name, dsn := range map[string]string{
		"postgres": pgtest.New(t),
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "svc.db"),
	} {
		out[name] = openDSN(t, dsn)
	}
	return out
}

func openDSN(t *testing.T, dsn string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	migrate(t, d, audit.Migrations)
	exec(t, d, `CREATE TABLE items (name TEXT NOT NULL)`)
	return d
}

// migrate applies a Migrations source in version order (a stand-in for the kit's
// migration runner).
func migrate(t *testing.T, d *db.DB, src fs.FS) {
	t.Helper()
	dir := "postgres"
	if d.Dialect() == dialect.SQLite {
		dir = "sqlite"
	}
	files, err := fs.Glob(src, dir+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s migrations: %v", dir, err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(src, f)
		if err != nil {
			t.Fatal(err)
		}
		exec(t, d, string(b))
	}
}

func exec(t *testing.T, d *db.DB, q string, args ...any) {
	t.Helper()
	if _, err := d.SQL().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// tamper runs q with the append-only triggers out of the way, as someone with
// direct access to the database could.
func tamper(t *testing.T, d *db.DB, q string) {
	t.Helper()
	if d.Dialect() == dialect.Postgres {
		exec(t, d, `ALTER TABLE audit_events DISABLE TRIGGER USER`)
		exec(t, d, q)
		exec(t, d, `ALTER TABLE audit_events ENABLE TRIGGER USER`)
		return
	}
	exec(t, d, `DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete`)
	exec(t, d, q)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// appendN appends n events (one transaction each) with the clock a minute apart.
func appendN(t *testing.T, l *audit.Log, d *db.DB, c *clock, n int) {
	t.Helper()
	for i := range n {
		mustAppend(t, l, d, audit.Event{Action: "UPDATED", RecordType: "ITEM", RecordID: fmt.Sprint("item-", i+1),
			Field: "name", OldValue: fmt.Sprint("old ", i), NewValue: fmt.Sprint("new ", i)})
		c.Add(time.Minute)
	}
}

func mustAppend(t *testing.T, l *audit.Log, d *db.DB, e audit.Event) audit.Entry {
	t.Helper()
	var got audit.Entry
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		var err error
		got, err = l.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func all(t *testing.T, l *audit.Log, d *db.DB, f audit.Filter) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if err := l.Each(context.Background(), d, f, func(e audit.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sequences(es []audit.Entry) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.Sequence)
	}
	return out
}

// recompute is hash version 1 written from its documentation alone, as an
// inspector would.
func recompute(e audit.Entry, valueKey []byte) string {
	digest := func(v string) string {
		m := hmac.New(sha256.New, valueKey)
		m.Write([]byte(v))
		return hex.EncodeToString(m.Sum(nil))
	}
	var b []byte
	b = append(b, "trialhub.audit.v1"...)
	for _, f := range []string{"1", e.PreviousHash, strconv.FormatInt(e.Sequence, 10), e.ID,
		e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z"), e.Actor.ID, e.Actor.Role, string(e.Actor.Kind),
		e.Action, e.RecordType, e.RecordID, e.SubjectUUID, e.Field, digest(e.OldValue), digest(e.NewValue),
		strconv.FormatBool(e.ValuesRedacted), e.Reason, e.TrialID, e.SiteID, e.Client.Address, e.Client.UserAgent,
		e.Client.AppVersion, e.Procedure, e.TraceID, e.RequestID} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAppendRecordsRequestAndCaller(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			c := newClock()
			key := []byte("value-key")
			l := audit.New(audit.WithClock(c.Now), audit.WithValueKey(key))
			ctx := request.With(context.Background(), request.Info{ID: "req-1", Procedure: "/trialhub.patient.v1.PatientService/UpdateProfile",
				ClientAddr: "192.0.2.7", UserAgent: "ua/1", AppVersion: "ios/2.3.1", TraceID: "trace-1"})
			ctx = auth.WithCaller(ctx, auth.Caller{Subject: "staff-1", Role: authzv1.Role_ROLE_INVESTIGATOR})
			var first audit.Entry
			err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				var err error
				first, err = l.Append(ctx, tx, audit.Event{Action: "PROFILE_UPDATED", RecordType: "PATIENT_PROFILE",
					RecordID: "p-1", SubjectUUID: "p-1", Field: "nickname", OldValue: "Al", NewValue: audit.Redacted,
					Reason: "typo", TrialID: "t-1", SiteID: "s-1"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := all(t, l, d, audit.Filter{})
			if len(got) != 1 {
				t.Fatalf("%d entries, want 1", len(got))
			}
			e := got[0]
			want := audit.Entry{
				Event: audit.Event{Actor: audit.Actor{ID: "staff-1", Role: "ROLE_INVESTIGATOR", Kind: audit.ActorUser},
					Action: "PROFILE_UPDATED", RecordType: "PATIENT_PROFILE", RecordID: "p-1", SubjectUUID: "p-1",
					Field: "nickname", OldValue: "Al", NewValue: audit.Redacted, ValuesRedacted: true, Reason: "typo",
					TrialID: "t-1", SiteID: "s-1"},
				Sequence: 1, ID: e.ID, OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC),
				RequestID: "req-1", Procedure: "/trialhub.patient.v1.PatientService/UpdateProfile", TraceID: "trace-1",
				Client:       audit.Client{Address: "192.0.2.7", UserAgent: "ua/1", AppVersion: "ios/2.3.1"},
				PreviousHash: strings.Repeat("0", 64), Hash: e.Hash, HashVersion: 1,
			}
			if e != want {
				t.Errorf("stored entry\n %+v\nwant\n %+v", e, want)
			}
			if e != first {
				t.Errorf("Append returned\n %+v\nstored\n %+v", first, e)
			}
			if len(e.ID) != 36 {
				t.Errorf("id %q is not a UUID", e.ID)
			}
			if h := recompute(e, key); e.Hash != h {
				t.Errorf("hash %s, the documented format gives %s", e.Hash, h)
			}

			// Without a caller the actor is anonymous; a named actor is kept.
			anon := mustAppend(t, l, d, audit.Event{Action: "LOGIN_FAILED", RecordType: "SESSION"})
			svc := audit.Actor{ID: "trial", Role: "ROLE_SERVICE", Kind: audit.ActorService}
			named := mustAppend(t, l, d, audit.Event{Actor: svc, Action: "ENROLLED", RecordType: "ENROLLMENT"})
			if anon.Actor != (audit.Actor{Kind: audit.ActorAnonymous}) || named.Actor != svc {
				t.Errorf("actors %+v and %+v, want anonymous and %+v", anon.Actor, named.Actor, svc)
			}
			if anon.Sequence != 2 || anon.PreviousHash != e.Hash || named.Sequence != 3 || named.PreviousHash != anon.Hash {
				t.Errorf("chain: (%d, %s) (%d, %s)", anon.Sequence, anon.PreviousHash, named.Sequence, named.PreviousHash)
			}
		})
	}
}

func TestAppendNeedsActionAndRecordType(t *testing.T) {
	d := openDSN(t, "sqlite:"+filepath.Join(t.TempDir(), "svc.db"))
	err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		_, err := audit.New().Append(ctx, tx, audit.Event{Action: "X"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "RecordType") {
		t.Fatalf("err = %v, want one naming RecordType", err)
	}
}

func TestRolledBackAppendLeavesNothing(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			l := audit.New()
			boom := errors.New("boom")
			err := d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('x')`); err != nil {
					return err
				}
				if _, err := l.Append(ctx, tx, audit.Event{Action: "CREATED", RecordType: "ITEM"}); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v", err)
			}
			if got := all(t, l, d, audit.Filter{}); len(got) != 0 {
				t.Fatalf("%d entries after rollback, want 0", len(got))
			}
			if e := mustAppend(t, l, d, audit.Event{Action: "CREATED", RecordType: "ITEM"}); e.Sequence != 1 {
				t.Errorf("next entry has sequence %d, want 1", e.Sequence)
			}
		})
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			l := audit.New()
			const n = 50
			errs := make(chan error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					errs <- d.InTx(context.Background(), func(ctx context.Context, tx *db.Tx) error {
						name := fmt.Sprint("item-", i)
						if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ($1)`, name); err != nil {
							return err
						}
						_, err := l.Append(ctx, tx, audit.Event{Action: "CREATED", RecordType: "ITEM", RecordID: name})
						return err
					})
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got := all(t, l, d, audit.Filter{})
			want := make([]int64, n)
			for i := range want {
				want[i] = int64(i + 1)
			}
			if !slices.Equal(sequences(got), want) {
				t.Fatalf("sequences %v, want 1..%d", sequences(got), n)
			}
			ids := map[string]bool{}
			for _, e := range got {
				ids[e.RecordID] = true
			}
			if len(ids) != n {
				t.Errorf("%d distinct records audited, want %d", len(ids), n)
			}
			rep, err := l.Verify(context.Background(), d, audit.Range{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Intact || rep.Checked != n || rep.LastSequence != n || rep.HeadHash != got[n-1].Hash {
				t.Errorf("report %+v, want intact over %d entries ending at %s", rep, n, got[n-1].Hash)
			}
		})
	}
}

func TestTrailRefusesUpdateAndDelete(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			l := audit.New()
			appendN(t, l, d, newClock(), 2)
			stmts := []string{
				`UPDATE audit_events SET reason = 'rewritten' WHERE sequence = 1`,
				`UPDATE audit_events SET new_value = 'something else' WHERE sequence = 1`,
				`DELETE FROM audit_events WHERE sequence = 2`,
				`DELETE FROM audit_events`,
			}
			if name == "postgres" {
				stmts = append(stmts, `TRUNCATE audit_events`)
			}
			for _, q := range stmts {
				_, err := d.SQL().Exec(q)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err = %v, want refused as append-only", q, err)
				}
			}
			got := all(t, l, d, audit.Filter{})
			if len(got) != 2 || got[0].Reason != "" || got[0].NewValue != "new 0" {
				t.Errorf("after refused changes: %+v", got)
			}
			if rep, err := l.Verify(context.Background(), d, audit.Range{}); err != nil || !rep.Intact {
				t.Errorf("Verify = %+v, %v; want intact", rep, err)
			}
		})
	}
}

func TestVerifyNamesFirstBrokenLink(t *testing.T) {
	cases := []struct {
		name   string
		tamper string
		broken int64
		kind   audit.Break
	}{
		{"altered reason", `UPDATE audit_events SET reason = 'rewritten' WHERE sequence = 3`, 3, audit.BreakHashMismatch},
		{"altered value", `UPDATE audit_events SET new_value = 'new 9' WHERE sequence = 3`, 3, audit.BreakHashMismatch},
		{"altered value and digest", `UPDATE audit_events SET new_value = 'x', new_value_digest = 'ab' WHERE sequence = 2`, 2, audit.BreakHashMismatch},
		{"altered time", `UPDATE audit_events SET trace_id = 'other' WHERE sequence = 5`, 5, audit.BreakHashMismatch},
		{"altered previous hash", `UPDATE audit_events SET previous_hash = hash WHERE sequence = 4`, 4, audit.BreakPreviousHashMismatch},
		{"deleted entry", `DELETE FROM audit_events WHERE sequence = 3`, 3, audit.BreakSequenceGap},
		{"deleted first entry", `DELETE FROM audit_events WHERE sequence = 1`, 1, audit.BreakSequenceGap},
		{"unknown hash version", `UPDATE audit_events SET hash_version = 9 WHERE sequence = 2`, 2, audit.BreakHashMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, d := range open(t) {
				t.Run(name, func(t *testing.T) {
					c := newClock()
					l := audit.New(audit.WithClock(c.Now))
					appendN(t, l, d, c, 5)
					tamper(t, d, tc.tamper)
					rep, err := l.Verify(context.Background(), d, audit.Range{})
					if err != nil {
						t.Fatal(err)
					}
					if rep.Intact || rep.FirstBroken != tc.broken || rep.Kind != tc.kind || rep.Detail == "" {
						t.Errorf("report %+v, want broken at %d with %s", rep, tc.broken, tc.kind)
					}
				})
			}
		})
	}
}

func TestVerifyRange(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := audit.New()
			if rep, err := l.Verify(ctx, d, audit.Range{}); err != nil || !rep.Intact || rep.Checked != 0 {
				t.Errorf("empty trail: %+v, %v; want intact, 0 checked", rep, err)
			}
			appendN(t, l, d, newClock(), 5)
			rep, err := l.Verify(ctx, d, audit.Range{From: 2, To: 4})
			if err != nil || !rep.Intact || rep.Checked != 3 || rep.FirstSequence != 2 || rep.LastSequence != 4 {
				t.Errorf("2..4: %+v, %v; want intact, 3 checked", rep, err)
			}
			rep, err = l.Verify(ctx, d, audit.Range{From: 4, To: 99})
			if err != nil || !rep.Intact || rep.Checked != 2 || rep.LastSequence != 5 {
				t.Errorf("4..99: %+v, %v; want intact, 2 checked up to 5", rep, err)
			}
			if _, err := l.Verify(ctx, d, audit.Range{From: 6}); !errors.Is(err, audit.ErrOutOfRange) {
				t.Errorf("from 6: err = %v, want ErrOutOfRange", err)
			}
			if _, err := l.Verify(ctx, d, audit.Range{From: 4, To: 2}); err == nil {
				t.Error("range 4..2: no error")
			}
			// The first entry of a range must link to the stored one before it.
			tamper(t, d, `UPDATE audit_events SET previous_hash = hash WHERE sequence = 3`)
			rep, err = l.Verify(ctx, d, audit.Range{From: 3})
			if err != nil || rep.Intact || rep.FirstBroken != 3 || rep.Kind != audit.BreakPreviousHashMismatch {
				t.Errorf("from 3 after tampering: %+v, %v", rep, err)
			}
		})
	}
}

func TestVerifyNeedsTheValueKey(t *testing.T) {
	d := openDSN(t, "sqlite:"+filepath.Join(t.TempDir(), "svc.db"))
	appendN(t, audit.New(audit.WithValueKey([]byte("k1"))), d, newClock(), 2)
	rep, err := audit.New(audit.WithValueKey([]byte("k2"))).Verify(context.Background(), d, audit.Range{})
	if err != nil || rep.Intact || rep.FirstBroken != 1 || rep.Kind != audit.BreakHashMismatch {
		t.Errorf("with another key: %+v, %v; want a hash mismatch at 1", rep, err)
	}
}

func TestRedactKeepsChainIntact(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := audit.New(audit.WithValueKey([]byte("secret")))
			leaked := mustAppend(t, l, d, audit.Event{Action: "PROFILE_UPDATED", RecordType: "PATIENT_PROFILE",
				Field: "nickname", NewValue: "Jane Doe, 1970-01-01"})
			appendN(t, l, d, newClock(), 1)
			var red audit.Entry
			err := d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				var err error
				red, err = l.Redact(ctx, tx, leaked.Sequence, audit.Event{Action: "AUDIT_VALUE_REDACTED",
					RecordType: "AUDIT_EVENT", Reason: "identity typed into a nickname"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := all(t, l, d, audit.Filter{})
			if len(got) != 3 || got[0].NewValue != audit.Redacted || got[0].OldValue != "" || got[0].Hash != leaked.Hash {
				t.Fatalf("redacted entry %+v", got[0])
			}
			if red.Sequence != 3 || red.RecordID != leaked.ID || got[2] != red {
				t.Errorf("redaction entry %+v, want sequence 3 about %s", red, leaked.ID)
			}
			if rep, err := l.Verify(ctx, d, audit.Range{}); err != nil || !rep.Intact || rep.Checked != 3 {
				t.Errorf("Verify after redaction = %+v, %v; want intact", rep, err)
			}
			err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := l.Redact(ctx, tx, 1, audit.Event{Action: "AUDIT_VALUE_REDACTED", RecordType: "AUDIT_EVENT"})
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "Reason") {
				t.Errorf("redaction without a reason: err = %v", err)
			}
			err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
				_, err := l.Redact(ctx, tx, 99, audit.Event{Action: "AUDIT_VALUE_REDACTED", RecordType: "AUDIT_EVENT", Reason: "r"})
				return err
			})
			if !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("redacting entry 99: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestListFiltersAndPages(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			l := audit.New(audit.WithClock(c.Now))
			start := c.Now()
			// 12 entries a minute apart: actors a/b alternate, subjects s0..s2 cycle,
			// actions CREATED/UPDATED/READ cycle, records item-0..item-3 cycle.
			actions := []string{"CREATED", "UPDATED", "READ"}
			for i := range 12 {
				mustAppend(t, l, d, audit.Event{
					Actor:  audit.Actor{ID: []string{"a", "b"}[i%2], Role: "ROLE_ADMIN", Kind: audit.ActorUser},
					Action: actions[i%3], RecordType: "ITEM", RecordID: fmt.Sprint("item-", i%4),
					SubjectUUID: fmt.Sprint("s", i%3),
				})
				c.Add(time.Minute)
			}
			cases := []struct {
				name string
				f    audit.Filter
				want []int64
			}{
				{"all", audit.Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
				{"actor", audit.Filter{ActorID: "b"}, []int64{2, 4, 6, 8, 10, 12}},
				{"subject", audit.Filter{SubjectUUID: "s1"}, []int64{2, 5, 8, 11}},
				{"actions", audit.Filter{Actions: []string{"CREATED", "READ"}}, []int64{1, 3, 4, 6, 7, 9, 10, 12}},
				{"record", audit.Filter{RecordType: "ITEM", RecordID: "item-2"}, []int64{3, 7, 11}},
				{"other record type", audit.Filter{RecordType: "VISIT"}, []int64{}},
				{"time range", audit.Filter{From: start.Add(2 * time.Minute), Until: start.Add(5 * time.Minute)}, []int64{3, 4, 5}},
				{"combined newest first", audit.Filter{ActorID: "a", Actions: []string{"CREATED"}, NewestFirst: true}, []int64{7, 1}},
				{"newest first", audit.Filter{NewestFirst: true}, []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
			}
			for _, tc := range cases {
				if got := sequences(all(t, l, d, tc.f)); !slices.Equal(got, tc.want) {
					t.Errorf("%s: Each gave %v, want %v", tc.name, got, tc.want)
				}
				// Pages of 5 give the same entries, in the same order.
				var paged []int64
				tok, pages := "", 0
				for {
					page, next, err := l.List(ctx, d, tc.f, 5, tok)
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					pages++
					if len(page) > 5 {
						t.Fatalf("%s: page of %d", tc.name, len(page))
					}
					paged = append(paged, sequences(page)...)
					if next == "" {
						break
					}
					tok = next
				}
				if !slices.Equal(paged, tc.want) {
					t.Errorf("%s: pages gave %v, want %v", tc.name, paged, tc.want)
				}
				if wantPages := max(1, (len(tc.want)+4)/5); pages != wantPages {
					t.Errorf("%s: %d pages, want %d", tc.name, pages, wantPages)
				}
			}

			page, next, err := l.List(ctx, d, audit.Filter{}, 0, "")
			if err != nil || len(page) != 12 || next != "" {
				t.Errorf("default page size: %d entries, next %q, %v", len(page), next, err)
			}
			_, next, err = l.List(ctx, d, audit.Filter{ActorID: "a"}, 2, "")
			if err != nil || next == "" {
				t.Fatalf("first page: next %q, %v", next, err)
			}
			for _, bad := range []string{next + "x", "not a token", "MTIz"} {
				if _, _, err := l.List(ctx, d, audit.Filter{ActorID: "a"}, 2, bad); !errors.Is(err, audit.ErrInvalidPageToken) {
					t.Errorf("token %q: err = %v, want ErrInvalidPageToken", bad, err)
				}
			}
			if _, _, err := l.List(ctx, d, audit.Filter{ActorID: "b"}, 2, next); !errors.Is(err, audit.ErrInvalidPageToken) {
				t.Errorf("token of another filter: err = %v, want ErrInvalidPageToken", err)
			}
		})
	}
}
