package telemetry_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/telemetry"
)

// Every transaction of a database opened with TxSpans is a client span under the
// caller's span, with the database system and an Error status when it fails; no
// statement or argument is recorded.
func TestTxSpansTraceEveryTransaction(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(ctx, "trial", telemetry.WithExporter(exp), telemetry.WithoutRuntimeMetrics())
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "t.db"), db.WithTxObserver(tel.TxSpans()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	parentCtx, parent := tel.Tracer("test").Start(ctx, "handler")
	var inside trace.SpanContext
	if err := d.InTx(parentCtx, func(ctx context.Context, tx *db.Tx) error {
		inside = trace.SpanContextFromContext(ctx)
		_, err := tx.ExecContext(ctx, `CREATE TABLE notes (body TEXT)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	if err := d.InTx(parentCtx, func(ctx context.Context, tx *db.Tx) error {
		_, _ = tx.ExecContext(ctx, `INSERT INTO notes VALUES ('Mei Lin, +8613912345678')`)
		return refused
	}); !errors.Is(err, refused) {
		t.Fatalf("InTx: %v", err)
	}
	parent.End()
	var txs []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "db transaction" {
			txs = append(txs, s)
		}
	}
	if len(txs) != 2 {
		t.Fatalf("%d transaction spans, want 2: %v", len(txs), exp.GetSpans())
	}
	if txs[0].SpanContext.SpanID() != inside.SpanID() {
		t.Errorf("fn ran in span %s, want the transaction's %s", inside.SpanID(), txs[0].SpanContext.SpanID())
	}
	for i, s := range txs {
		if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
			t.Errorf("transaction %d: parent %s kind %v, want the handler's span and client", i, s.Parent.SpanID(), s.SpanKind)
		}
		for _, a := range s.Attributes {
			if a.Key != "db.system.name" {
				t.Errorf("transaction %d: attribute %s recorded; only db.system.name is", i, a.Key)
			} else if a.Value.AsString() != "sqlite" {
				t.Errorf("db.system.name = %s", a.Value.AsString())
			}
		}
	}
	if txs[0].Status.Code == codes.Error || txs[1].Status.Code != codes.Error {
		t.Errorf("statuses %v and %v, want unset and Error", txs[0].Status, txs[1].Status)
	}
}
