package migrate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/schema/field"

	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// visits is a table as a service's generated ent/migrate package declares it.
func visits(extra ...*schema.Column) []*schema.Table {
	id := &schema.Column{Name: "id", Type: field.TypeInt, Increment: true}
	cols := append([]*schema.Column{
		id,
		{Name: "subject_uuid", Type: field.TypeUUID},
		{Name: "status", Type: field.TypeString, Size: 32, Default: "PLANNED"},
	}, extra...)
	t := &schema.Table{Name: "visits", Columns: cols, PrimaryKey: []*schema.Column{id}}
	t.Indexes = []*schema.Index{{Name: "visit_subject", Columns: []*schema.Column{cols[1]}}}
	return []*schema.Table{t}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestGenerateThenApply(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	gen := func(name string, tables []*schema.Table) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, dia := range []string{dialect.Postgres, dialect.SQLite} {
			file, err := migrate.Generate(ctx, dir, dia, pgtest.New(t), name, tables)
			if err != nil {
				t.Fatalf("Generate %s %s: %v", dia, name, err)
			}
			if file == "" {
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out[dia] = filepath.Base(file) + "\n" + string(b)
		}
		return out
	}

	first := gen("init", visits())
	for _, dia := range []string{dialect.Postgres, dialect.SQLite} {
		if !strings.HasPrefix(first[dia], "0001_init.sql\n") || !strings.Contains(first[dia], "CREATE TABLE") {
			t.Errorf("%s first migration =\n%s\nwant 0001_init.sql with CREATE TABLE", dia, first[dia])
		}
	}
	notes := &schema.Column{Name: "notes", Type: field.TypeString, Nullable: true}
	second := gen("visit_notes", visits(notes))
	for _, dia := range []string{dialect.Postgres, dialect.SQLite} {
		got := second[dia]
		if !strings.HasPrefix(got, "0002_visit_notes.sql\n") || !strings.Contains(got, "ALTER TABLE") ||
			!strings.Contains(got, "notes") || strings.Contains(got, "CREATE TABLE") {
			t.Errorf("%s second migration =\n%s\nwant 0002_visit_notes.sql with only the ALTER TABLE", dia, got)
		}
	}
	if third := gen("nothing", visits(notes)); len(third) != 0 {
		t.Errorf("Generate without a change wrote %v", third)
	}
	for _, folder := range []string{"postgres", "sqlite"} {
		got := strings.Join(listDir(t, filepath.Join(dir, folder)), " ")
		if got != "0001_init.sql 0002_visit_notes.sql atlas.sum" {
			t.Errorf("%s/ holds %q", folder, got)
		}
	}

	// The files apply with Apply, on both dialects, and build the schema.
	src := migrate.Source{Name: "svc", FS: os.DirFS(dir)}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := open(t, b, b.dsn(t))
			if err := migrate.Apply(ctx, d, src); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(applied(t, d), " "); got != "svc/init svc/visit_notes" {
				t.Errorf("applied = %q", got)
			}
			q := `INSERT INTO visits (subject_uuid, notes) VALUES ('9b2f6a3e-1c1d-4d35-9a57-4c1c0b9a7d11', 'ok')`
			if _, err := d.SQL().ExecContext(ctx, q); err != nil {
				t.Fatalf("insert into the generated table: %v", err)
			}
			var status string
			if err := d.SQL().QueryRowContext(ctx, `SELECT status FROM visits`).Scan(&status); err != nil || status != "PLANNED" {
				t.Errorf("status = %q (err %v), want the default PLANNED", status, err)
			}
		})
	}
}

func TestGenerateRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "Init", "add-notes", "../x"} {
		if _, err := migrate.Generate(context.Background(), t.TempDir(), dialect.SQLite, "", name, visits()); err == nil {
			t.Errorf("Generate(name %q) succeeded", name)
		}
	}
}
