package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RiverMiddleware makes a River job carry the trace of the request that
// enqueued it. Give it to the Queue (jobs.WithPlugins(tel.RiverMiddleware())).
//
// At insert it writes the W3C trace context of the inserting context (the server
// span of the request, or a job's span) into the job's metadata, under
// "traceparent" and "tracestate", as rivercontrib/otelriver does, so either can
// read the other's jobs. At work it starts a consumer span "river.work/<kind>"
// whose parent is that context, with a link to it as well, and with
// messaging.system "river", the job's kind, queue, id and attempt: the delivery
// appears in the trace of the submission that caused it, and every attempt is one
// span. A job inserted without a trace starts a new one. A failed attempt sets an
// Error status; a snooze or cancel does not count as a failure.
//
// rivercontrib/otelriver v0.12.0 builds against River v0.51.2 but only links the
// work span to the inserting span (a new trace per job), and needs an OTel
// MeterProvider for its metrics; this middleware parents it, so one trace holds
// the whole flow, and leaves job metrics to the river_job collector (RiverJobs).
func (t *Telemetry) RiverMiddleware() rivertype.Plugin {
	return &riverMiddleware{tracer: t.tracer(), prop: t.prop}
}

type riverMiddleware struct {
	river.MiddlewareDefaults
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// InsertMany writes the trace context into each job's metadata.
func (m *riverMiddleware) InsertMany(ctx context.Context, many []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	carrier := propagation.MapCarrier{}
	m.prop.Inject(ctx, carrier)
	if len(carrier) > 0 {
		for _, p := range many {
			md, err := withTraceContext(p.Metadata, carrier)
			if err != nil {
				return nil, fmt.Errorf("telemetry: job %s: %w", p.Kind, err)
			}
			p.Metadata = md
		}
	}
	return doInner(ctx)
}

// Work runs the job inside a consumer span parented to the inserting context.
func (m *riverMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "river"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", job.Queue),
			attribute.String("river.job.kind", job.Kind),
			attribute.Int64("river.job.id", job.ID),
			attribute.Int("river.job.attempt", job.Attempt),
		),
	}
	if parent := m.prop.Extract(ctx, traceCarrier(job.Metadata)); trace.SpanContextFromContext(parent).IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: trace.SpanContextFromContext(parent)}))
		ctx = parent
	}
	ctx, span := m.tracer.Start(ctx, "river.work/"+job.Kind, opts...)
	defer span.End()
	err := doInner(ctx)
	if err != nil && !isSnoozeOrCancel(err) {
		span.SetStatus(codes.Error, "job attempt failed")
	}
	return err
}

func isSnoozeOrCancel(err error) bool {
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	return errors.As(err, &snooze) || errors.As(err, &cancel)
}

// withTraceContext returns metadata (a JSON object, or empty) with the carrier's
// keys set, keeping every other key.
func withTraceContext(metadata []byte, carrier propagation.MapCarrier) ([]byte, error) {
	md := map[string]json.RawMessage{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &md); err != nil {
			return nil, fmt.Errorf("metadata is not a JSON object: %w", err)
		}
	}
	for k, v := range carrier {
		b, _ := json.Marshal(v)
		md[k] = b
	}
	return json.Marshal(md)
}

// traceCarrier reads the string fields of a job's metadata.
func traceCarrier(metadata []byte) propagation.MapCarrier {
	var md map[string]any
	carrier := propagation.MapCarrier{}
	if json.Unmarshal(metadata, &md) != nil {
		return carrier
	}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := md[k].(string); ok {
			carrier[k] = v
		}
	}
	return carrier
}
