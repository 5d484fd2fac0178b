package logs_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/trialhub/trialhub/services/platform/logs"
)

// BenchmarkRPCLine is the cost of one rpc line (the logging interceptor's
// attributes) through the redacting handler against the JSON handler alone.
func BenchmarkRPCLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("request_id", "KQ3VZ4XW7TQ5MLSJ2V6YHPGNOA"), slog.String("service", "epro"),
		slog.String("procedure", "/trialhub.epro.v1.EproService/SubmitResponse"), slog.String("code", "ok"),
		slog.Float64("duration_ms", 12.5), slog.String("protocol", "connect"), slog.String("role", "PATIENT"),
		slog.String("subject_uuid", "0b6e9d4c-1f2a-4e5b-9c3d-123456789012"),
	}
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{
		{"json", slog.NewJSONHandler(io.Discard, nil)},
		{"redacting", logs.NewHandler(slog.NewJSONHandler(io.Discard, nil))},
	} {
		b.Run(c.name, func(b *testing.B) {
			log := slog.New(c.h)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(ctx, slog.LevelInfo, "rpc", attrs...)
			}
		})
	}
}
