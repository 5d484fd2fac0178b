// Package migratecmd is the body of every service's migration generator, the
// command a service runs after changing its ent schema and `go generate ./ent`:
//
//	go run ./internal/cmd/migrations <name>
//
// It starts a throwaway PostgreSQL from the local install (pgtest) and writes the
// next versioned migration, NNNN_<name>.sql, for PostgreSQL and SQLite under
// migrations/ (migrate.Generate). A released migration file never changes; a
// schema change is a new file.
package migratecmd

import (
	"context"
	"fmt"
	"io"
	"os"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"

	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// Main runs the generator for a service's ent tables (its ent/migrate.Tables)
// with the command line's one argument as the migration's name, and exits.
func Main(tables []*schema.Table) {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/cmd/migrations <name>")
		os.Exit(2)
	}
	if err := Run(context.Background(), os.Stdout, "migrations", os.Args[1], tables); err != nil {
		fmt.Fprintln(os.Stderr, "migrations:", err)
		os.Exit(1)
	}
}

// Run writes the migration named name into dir for both dialects and says on out
// what it wrote per dialect.
func Run(ctx context.Context, out io.Writer, dir, name string, tables []*schema.Table) error {
	c, err := pgtest.Start(ctx)
	if err != nil {
		return err
	}
	defer c.Stop()
	for _, dia := range []string{dialect.Postgres, dialect.SQLite} {
		file, err := migrate.Generate(ctx, dir, dia, c.URL, name, tables)
		if err != nil {
			return fmt.Errorf("%s: %w", dia, err)
		}
		if file == "" {
			file = "no change"
		}
		fmt.Fprintf(out, "%s: %s\n", dia, file)
	}
	return nil
}
