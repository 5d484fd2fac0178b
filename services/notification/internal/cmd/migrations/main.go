// Command migrations writes the notification service's next versioned migration per
// dialect from the ent schema (migrate.Generate), on a throwaway PostgreSQL:
//
//	go run ./internal/cmd/migrations <name>
//
// Released files never change; a schema change adds NNNN_<name>.sql.
package main

import (
	"context"
	"fmt"
	"os"

	"entgo.io/ent/dialect"

	entmigrate "github.com/trialhub/trialhub/services/notification/ent/migrate"
	"github.com/trialhub/trialhub/services/platform/migrate"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: migrations <name>")
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
			fmt.Println(dia + ": no change")
			continue
		}
		fmt.Println("wrote", file)
	}
	return nil
}
