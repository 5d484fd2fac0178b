package audit_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	"github.com/trialhub/trialhub/services/platform/audit"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/db"
)

func ExampleLog_Append() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(dir, "svc.db"))
	if err != nil {
		panic(err)
	}
	defer d.Close()
	// The kit's migration runner applies audit.Migrations; by hand here.
	ddl, _ := fs.ReadFile(audit.Migrations, "sqlite/0001_audit_events.sql")
	if _, err := d.SQL().Exec(string(ddl)); err != nil {
		panic(err)
	}

	log := audit.New(audit.WithValueKey([]byte("from the service's secrets")))
	// The server puts the caller (and request.Info) in the context.
	ctx = auth.WithCaller(ctx, auth.Caller{Subject: "staff-7", Role: authzv1.Role_ROLE_ADMIN})
	err = d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error {
		// ... the change itself, through tx ...
		e, err := log.Append(ctx, tx, audit.Event{Action: "ROLE_CHANGED", RecordType: "STAFF_ACCOUNT",
			RecordID: "staff-9", Field: "role", OldValue: "ROLE_ANALYST", NewValue: "ROLE_INVESTIGATOR",
			Reason: "joined site 12"})
		fmt.Println(e.Sequence, e.Actor.ID, e.Actor.Role, e.Action)
		return err
	})
	if err != nil {
		panic(err)
	}
	rep, err := log.Verify(ctx, d, audit.Range{})
	fmt.Println(rep.Intact, rep.Checked, err)
	// Output:
	// 1 staff-7 ROLE_ADMIN ROLE_CHANGED
	// true 1 <nil>
}
