package idempotency_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
)

func ExampleDo() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "idempotency")
	defer os.RemoveAll(dir)
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(dir, "svc.db"))
	if err != nil {
		panic(err)
	}
	defer d.Close()
	// The kit's migration runner applies idempotency.Migrations; by hand here.
	ddl, _ := fs.ReadFile(idempotency.Migrations, "sqlite/0001_idempotency_keys.sql")
	if _, err := d.SQL().Exec(string(ddl)); err != nil {
		panic(err)
	}

	store := idempotency.New()
	// In a handler: idempotency.KeyFor(ctx, req.GetIdempotencyKey()).
	key := idempotency.Key{Method: "/trialhub.trial.v1.TrialService/CreateSite", Caller: "ROLE_ADMIN:admin-1", Key: "c0ffee"}
	create := func(ctx context.Context, tx *db.Tx) (*wrapperspb.StringValue, error) {
		fmt.Println("creating the site") // the write, through tx
		return wrapperspb.String("site-1"), nil
	}
	for range 2 { // a retry gets the first answer; the write ran once
		res, err := idempotency.Do(ctx, store, d, key, wrapperspb.String("Site Lyon"), create)
		fmt.Println(res.GetValue(), err)
	}
	_, err = idempotency.Do(ctx, store, d, key, wrapperspb.String("Site Nantes"), create)
	fmt.Println(connect.CodeOf(err))
	// Output:
	// creating the site
	// site-1 <nil>
	// site-1 <nil>
	// already_exists
}
