package db_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/platform/db"
)

// A handler maps a storage error to its Connect code once, at the edge: the client
// reads the code and a message naming what failed, never the SQL.
func ExampleConnectError() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(dir, "svc.db"))
	if err != nil {
		panic(err)
	}
	defer d.Close()
	_, _ = d.SQL().ExecContext(ctx, `CREATE TABLE visit (id integer PRIMARY KEY)`)
	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO visit (id) VALUES (1), (1)`)
		return err
	})
	cerr := db.ConnectError(err, "visit")
	fmt.Println(connect.CodeOf(cerr), "|", cerr.(*connect.Error).Message())
	// Output: already_exists | visit already exists
}
