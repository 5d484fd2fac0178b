// Command migrations writes the notification service's next versioned migration for
// each dialect from the ent schema: run it from services/notification after changing
// ent/schema and `go generate ./ent`:
//
//	go run ./internal/cmd/migrations <name>
//
// See the kit's migratecmd: a released migration file never changes; a change
// is a new file.
package main

import (
	entmigrate "github.com/trialhub/trialhub/services/notification/ent/migrate"
	"github.com/trialhub/trialhub/services/platform/migrate/migratecmd"
)

func main() { migratecmd.Main(entmigrate.Tables) }
