package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"text/template"

	atlas "ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"

	"github.com/trialhub/trialhub/services/platform/db"
)

var migrationName = regexp.MustCompile(`^[a-z0-9_]+$`)

// Generate writes the next migration of one dialect, dir/<folder>/NNNN_name.sql,
// holding the SQL that takes the schema the folder's migrations build to the one
// tables describe (a service's generated ent/migrate.Tables), and returns the
// file's path; when nothing changed it writes nothing and returns "". It uses ent's
// Atlas integration in replay mode: the existing files are replayed on a dev
// database, which must be empty and is left empty, and the result is diffed with
// tables. Dropped columns and indexes are not generated (ent's default); write those
// by hand.
//
// devDSN is a postgres:// URL of an empty database for dialect.Postgres (e.g. on a
// pgtest.Start server) and is ignored for dialect.SQLite, which uses an in-memory
// database. Beside the files Atlas keeps atlas.sum, its integrity file: commit it;
// Apply ignores it.
//
// A service's generator is one line over it (package migratecmd):
//
//	func main() { migratecmd.Main(entmigrate.Tables) }
func Generate(ctx context.Context, dir, dia, devDSN, name string, tables []*schema.Table) (string, error) {
	if !migrationName.MatchString(name) {
		return "", fmt.Errorf("migrate: generate: name %q: want lower case letters, digits and _", name)
	}
	folder, err := Folder(dia)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, folder)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", fmt.Errorf("migrate: generate: %w", err)
	}
	next, err := nextVersion(path)
	if err != nil {
		return "", err
	}
	local, err := atlas.NewLocalDir(path)
	if err != nil {
		return "", fmt.Errorf("migrate: generate: %w", err)
	}
	file := fmt.Sprintf("%04d_%s.sql", next, name)
	formatter := atlas.TemplateFormatter{{
		N: template.Must(template.New("name").Parse(file)),
		C: atlas.DefaultFormatter[0].C, // atlas's own statements, one per line
	}}
	drv, closeDev, err := devDriver(ctx, dia, devDSN)
	if err != nil {
		return "", err
	}
	defer closeDev()
	m, err := schema.NewMigrate(drv,
		schema.WithDir(local),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(dia),
		schema.WithFormatter(formatter),
		schema.WithErrNoPlan(true),
	)
	if err != nil {
		return "", fmt.Errorf("migrate: generate: %w", err)
	}
	if err := m.NamedDiff(ctx, name, tables...); err != nil {
		if err == atlas.ErrNoPlan {
			return "", nil
		}
		return "", fmt.Errorf("migrate: generate %s: %w", filepath.Join(path, file), err)
	}
	return filepath.Join(path, file), nil
}

// nextVersion is one above the highest NNNN_ file in path.
func nextVersion(path string) (int, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return 0, fmt.Errorf("migrate: generate: %w", err)
	}
	top := 0
	for _, e := range entries {
		if e.Name() == sumFile {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return 0, fmt.Errorf("migrate: generate: %s: not a migration (want NNNN_name.sql)", filepath.Join(path, e.Name()))
		}
		v, _ := strconv.Atoi(m[1])
		top = max(top, v)
	}
	if top >= 9999 {
		return 0, fmt.Errorf("migrate: generate: %s: versions exhausted", path)
	}
	return top + 1, nil
}

// devDriver opens the dev database Atlas replays on.
func devDriver(ctx context.Context, dia, devDSN string) (dialect.Driver, func(), error) {
	switch dia {
	case dialect.Postgres:
		// lib/pq: no statement cache to go stale while the replay changes tables.
		d, err := db.Open(ctx, devDSN, db.WithPostgresDriver(db.LibPQ), db.WithMaxConns(2))
		if err != nil {
			return nil, nil, fmt.Errorf("migrate: generate: dev database: %w", err)
		}
		return entsql.OpenDB(dia, d.SQL()), func() { d.Close() }, nil
	default: // dialect.SQLite
		sqlDB, err := sql.Open("sqlite", "file:dev?mode=memory&_pragma=foreign_keys(1)")
		if err != nil {
			return nil, nil, fmt.Errorf("migrate: generate: dev database: %w", err)
		}
		sqlDB.SetMaxOpenConns(1) // one connection: the in-memory database lives in it
		return entsql.OpenDB(dia, sqlDB), func() { sqlDB.Close() }, nil
	}
}
