package telemetry

import (
	"context"
	"net/http"
	"strconv"

	"entgo.io/ent/dialect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/trialhub/trialhub/services/platform/db"
)

// InTx is d.InTx inside a client span named name (say "enroll_subject"), with
// db.system.name ("postgresql" or "sqlite") and an Error status when the
// transaction fails: one span for the whole transaction, retries of
// serialization failures included, so a slow write shows as a slow hop in the
// trace. Jobs inserted in it (InsertTx) carry the trace, since the span is in
// ctx. A service without its own tracing of queries uses it for each write:
//
//	err := s.tel.InTx(ctx, s.db, "enroll_subject", func(ctx context.Context, tx *db.Tx) error { ... })
func (t *Telemetry) InTx(ctx context.Context, d *db.DB, name string, fn func(ctx context.Context, tx *db.Tx) error) error {
	system := "postgresql"
	if d.Dialect() == dialect.SQLite {
		system = "sqlite"
	}
	ctx, span := t.tracer().Start(ctx, "db "+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", name)))
	defer span.End()
	err := d.InTx(ctx, fn)
	if err != nil {
		span.SetStatus(codes.Error, "transaction failed")
	}
	return err
}

// TxSpans is a db.TxObserver (db.WithTxObserver) that puts every transaction of
// a database in a client span "db transaction" with db.system.name, an Error
// status when it fails: a slow or retried write shows as a hop of its own in the
// trace, and the jobs a transaction inserts (InsertTx) are its children. The
// kit's Process gives it to every service's database. It records no
// statement: a query's arguments are personal data as often as not.
func (t *Telemetry) TxSpans() db.TxObserver {
	tracer := t.tracer()
	return func(ctx context.Context, dialectName string) (context.Context, func(error)) {
		system := "postgresql"
		if dialectName == dialect.SQLite {
			system = "sqlite"
		}
		ctx, span := tracer.Start(ctx, "db transaction", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", system)))
		return ctx, func(err error) {
			if err != nil {
				span.SetStatus(codes.Error, "transaction failed")
			}
			span.End()
		}
	}
}

// Transport wraps an HTTP transport (a vendor's: client.HTTP's, or
// http.DefaultTransport when next is nil) so every request is a client span
// "HTTP <method>" with http.request.method, server.address and
// http.response.status_code, an Error status on a transport error or a 5xx.
// The URL's path and query are not recorded (a vendor URL may hold a phone
// number) and no traceparent is sent to the vendor.
func (t *Telemetry) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &tracedTransport{next: next, tracer: t.tracer()}
}

type tracedTransport struct {
	next   http.RoundTripper
	tracer trace.Tracer
}

func (tt *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := tt.tracer.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Hostname())))
	defer span.End()
	res, err := tt.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		span.SetStatus(codes.Error, "transport error")
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	if res.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(res.StatusCode))
	}
	return res, nil
}
