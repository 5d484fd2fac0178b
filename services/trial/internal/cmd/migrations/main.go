// Command migrations writes the trial service's next versioned migration for
// each dialect from the ent schema (migrate.Generate): run it from
// services/trial after changing ent/schema and `go generate ./ent`:
//
//	go run ./internal/cmd/migrations <name>
//
// It starts a throwaway PostgreSQL from the local install for the replay. A
// released migration file never changes; a change is a new file.
package main

import (
	"context"
	"fmt"
	"os"

	"entgo.io/ent/dialect"

	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
	entmigrate "github.com/trialhub/trialhub/services/trial/ent/migrate"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/cmd/migrations <name>")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "migrations:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name string) error {
	c, err := pgtest.Start(ctx)
	if err != nil {
		return err
	}
	defer c.Stop()
	for _, dia := range []string{dialect.Postgres, dialect.SQLite} {
		file, err := migrate.Generate(ctx, "migrations", dia, c.URL, name, entmigrate.Tables)
		if err != nil {
			return fmt.Errorf("%s: %w", dia, err)
		}
		if file == "" {
			file = "nothing to do"
		}
		fmt.Printf("%s: %s\n", dia, file)
	}
	return nil
}
