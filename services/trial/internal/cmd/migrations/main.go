// Command migrations writes the trial service's next versioned migration for
// each dialect from the ent schema: run it from services/trial after changing
// ent/schema and `go generate ./ent`:
//
//	go run ./internal/cmd/migrations <name>
//
// See the kit's migratecmd: a released migration file never changes; a change
// is a new file.
package main

import (
	"github.com/trialhub/trialhub/services/platform/migrate/migratecmd"
	entmigrate "github.com/trialhub/trialhub/services/trial/ent/migrate"
)

func main() { migratecmd.Main(entmigrate.Tables) }
