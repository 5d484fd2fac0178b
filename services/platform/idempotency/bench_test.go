package idempotency_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/idempotency"
	"github.com/trialhub/trialhub/services/platform/pgtest"
)

// BenchmarkDo measures a guarded write with a new key ("first") and a retry that
// replays the stored answer ("replay").
func BenchmarkDo(b *testing.B) {
	for name, dsn := range map[string]string{
		"postgres": pgtest.New(b),
		"sqlite":   "sqlite:" + filepath.Join(b.TempDir(), "svc.db"),
	} {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		dir := "postgres"
		if d.Dialect() != "postgres" {
			dir = "sqlite"
		}
		ddl, err := fs.ReadFile(idempotency.Migrations, dir+"/0001_idempotency_keys.sql")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.SQL().Exec(string(ddl)); err != nil {
			b.Fatal(err)
		}
		s := idempotency.New()
		fn := func(ctx context.Context, tx *db.Tx) (*wrapperspb.StringValue, error) {
			return wrapperspb.String("answer"), nil
		}
		req := wrapperspb.String("request body")
		n := 0
		b.Run(name+"/first", func(b *testing.B) {
			for b.Loop() {
				n++
				k := idempotency.Key{Method: "/x.v1.S/M", Caller: "ROLE_PATIENT:p", Key: strconv.Itoa(n)}
				if _, err := idempotency.Do(context.Background(), s, d, k, req, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/replay", func(b *testing.B) {
			k := idempotency.Key{Method: "/x.v1.S/M", Caller: "ROLE_PATIENT:p", Key: "1"}
			for b.Loop() {
				if _, err := idempotency.Do(context.Background(), s, d, k, req, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
