package migrate_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"entgo.io/ent/dialect"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type backend struct {
	name string
	dsn  func(t testing.TB) string
	opts []db.Option
}

var backends = []backend{
	{"postgres-pq", pgtest.New, []db.Option{db.WithPostgresDriver(db.LibPQ)}},
	{"postgres-pgx", pgtest.New, []db.Option{db.WithPostgresDriver(db.PGX)}},
	{"sqlite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "svc.db") }, nil},
}

func open(t *testing.T, b backend, dsn string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dsn, b.opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// files builds a source's FS with the same SQL for both dialects.
func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, sql := range m {
		fsys["postgres/"+name] = &fstest.MapFile{Data: []byte(sql)}
		fsys["sqlite/"+name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return fsys
}

func applied(t *testing.T, d *db.DB) []string {
	t.Helper()
	rows, err := d.SQL().Query(`SELECT source, version, name FROM schema_migrations ORDER BY applied_at, source, version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var src, name string
		var v int
		if err := rows.Scan(&src, &v, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, src+"/"+name)
	}
	return out
}

func tableExists(t *testing.T, d *db.DB, name string) bool {
	t.Helper()
	q := `SELECT count(*) FROM information_schema.tables WHERE table_name = $1`
	if d.Dialect() == dialect.SQLite {
		q = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	}
	var n int
	if err := d.SQL().QueryRow(q, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestApply(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := open(t, b, b.dsn(t))
			kit := files(map[string]string{
				"0001_audit.sql": `CREATE TABLE audit_event (id integer PRIMARY KEY, body text NOT NULL);`,
			})
			svc := files(map[string]string{
				"0001_init.sql":  "CREATE TABLE visit (id integer PRIMARY KEY);\nCREATE INDEX visit_id ON visit (id);",
				"0002_notes.sql": `ALTER TABLE visit ADD COLUMN notes text;`,
			})
			sources := []migrate.Source{{Name: "audit", FS: kit}, {Name: "epro", FS: svc}}
			if err := migrate.Apply(ctx, d, sources...); err != nil {
				t.Fatal(err)
			}
			want := "audit/audit epro/init epro/notes"
			if got := strings.Join(applied(t, d), " "); got != want {
				t.Errorf("applied = %q, want %q", got, want)
			}
			if _, err := d.SQL().Exec(`INSERT INTO visit (id, notes) VALUES (1, 'x')`); err != nil {
				t.Errorf("schema not in place: %v", err)
			}
			// Again: nothing to do (running CREATE TABLE twice would fail).
			if err := migrate.Apply(ctx, d, sources...); err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			// A new file is applied, alone.
			svc["postgres/0003_flag.sql"] = &fstest.MapFile{Data: []byte(`ALTER TABLE visit ADD COLUMN flag integer;`)}
			svc["sqlite/0003_flag.sql"] = svc["postgres/0003_flag.sql"]
			if err := migrate.Apply(ctx, d, sources...); err != nil {
				t.Fatal(err)
			}
			if got := len(applied(t, d)); got != 4 {
				t.Errorf("%d migrations recorded, want 4", got)
			}
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	base := map[string]string{
		"0001_init.sql": `CREATE TABLE visit (id integer PRIMARY KEY);`,
		"0003_more.sql": `CREATE TABLE plan (id integer PRIMARY KEY);`,
	}
	cases := []struct {
		name  string
		later func(fs fstest.MapFS) // after base was applied
		fresh fstest.MapFS          // or: a source refused before anything runs
		want  string
	}{
		{name: "changed", later: func(fs fstest.MapFS) {
			fs["postgres/0001_init.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE visit (id bigint PRIMARY KEY);`)}
			fs["sqlite/0001_init.sql"] = fs["postgres/0001_init.sql"]
		}, want: "0001_init.sql changed since it was applied"},
		{name: "renamed", later: func(fs fstest.MapFS) {
			fs["postgres/0001_start.sql"], fs["sqlite/0001_start.sql"] = fs["postgres/0001_init.sql"], fs["sqlite/0001_init.sql"]
			delete(fs, "postgres/0001_init.sql")
			delete(fs, "sqlite/0001_init.sql")
		}, want: "changed since it was applied"},
		{name: "vanished", later: func(fs fstest.MapFS) {
			delete(fs, "postgres/0003_more.sql")
			delete(fs, "sqlite/0003_more.sql")
		}, want: "0003_more.sql vanished"},
		{name: "older than applied", later: func(fs fstest.MapFS) {
			fs["postgres/0002_late.sql"] = &fstest.MapFile{Data: []byte(`SELECT 1;`)}
			fs["sqlite/0002_late.sql"] = fs["postgres/0002_late.sql"]
		}, want: "0002_late.sql is older than applied version 0003"},
		{name: "duplicate version", fresh: files(map[string]string{"0001_a.sql": `SELECT 1;`, "0001_b.sql": `SELECT 1;`}), want: "have the same version 0001"},
		{name: "short version", fresh: files(map[string]string{"1_init.sql": `SELECT 1;`}), want: "1_init.sql: not a migration"},
		{name: "upper case", fresh: files(map[string]string{"0001_Init.sql": `SELECT 1;`}), want: "not a migration"},
		{name: "stray file", fresh: files(map[string]string{"0001_init.sql": `SELECT 1;`, "README.md": "x"}), want: "README.md: not a migration"},
		{name: "version zero", fresh: files(map[string]string{"0000_init.sql": `SELECT 1;`}), want: "versions start at 0001"},
		{name: "no dialect folder", fresh: fstest.MapFS{"mysql/0001_a.sql": {Data: []byte(`SELECT 1;`)}}, want: "has no"},
		{name: "folder in a dialect folder", fresh: files(map[string]string{"0001_a.sql/x": `SELECT 1;`}), want: "0001_a.sql: not a migration"},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx := context.Background()
					d := open(t, b, b.dsn(t))
					src := migrate.Source{Name: "svc", FS: c.fresh}
					if c.later != nil {
						src.FS = files(base)
						if err := migrate.Apply(ctx, d, src); err != nil {
							t.Fatal(err)
						}
						c.later(src.FS.(fstest.MapFS))
					}
					before := len(appliedOrNone(t, d))
					err := migrate.Apply(ctx, d, src)
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("Apply error = %v, want one containing %q", err, c.want)
					}
					if after := len(appliedOrNone(t, d)); after != before {
						t.Errorf("refused Apply still recorded %d migrations", after-before)
					}
				})
			}
		})
	}
}

// A migration that fails leaves nothing: neither its first statements nor a row.
func TestApplyFailedMigrationRollsBack(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			d := open(t, b, b.dsn(t))
			src := migrate.Source{Name: "svc", FS: files(map[string]string{
				"0001_ok.sql":  `CREATE TABLE a (id integer PRIMARY KEY);`,
				"0002_bad.sql": "CREATE TABLE b (id integer PRIMARY KEY);\nINSERT INTO nowhere VALUES (1);",
			})}
			err := migrate.Apply(ctx, d, src)
			if err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
				t.Fatalf("Apply error = %v, want one naming 0002_bad.sql", err)
			}
			if got := strings.Join(applied(t, d), " "); got != "svc/ok" {
				t.Errorf("applied = %q, want only svc/ok", got)
			}
			if tableExists(t, d, "b") {
				t.Error("the failed migration's CREATE TABLE b stayed")
			}
			if !tableExists(t, d, "a") {
				t.Error("the good migration's table a is missing")
			}
		})
	}
}

// Replicas starting together against one PostgreSQL apply each migration once.
func TestApplyConcurrentReplicas(t *testing.T) {
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			src := migrate.Source{Name: "svc", FS: files(map[string]string{
				// Slow, and fails when run twice.
				"0001_init.sql": "CREATE TABLE visit (id integer PRIMARY KEY);\nSELECT pg_sleep(0.3);",
				"0002_more.sql": "CREATE TABLE plan (id integer PRIMARY KEY);",
			})}
			const replicas = 4
			dbs := make([]*db.DB, replicas)
			for i := range dbs {
				dbs[i] = open(t, b, dsn)
			}
			var wg sync.WaitGroup
			errs := make([]error, replicas)
			start := make(chan struct{})
			for i := range dbs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = migrate.Apply(context.Background(), dbs[i], src)
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
			}
			if got := strings.Join(applied(t, dbs[0]), " "); got != "svc/init svc/more" {
				t.Errorf("applied = %q, want each migration once", got)
			}
		})
	}
}

func appliedOrNone(t *testing.T, d *db.DB) []string {
	if !tableExists(t, d, "schema_migrations") {
		return nil
	}
	return applied(t, d)
}
