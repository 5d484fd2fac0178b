package logs

import "strings"

// Routine reports whether calls to procedure are routine traffic that the
// logging interceptor logs per call only at debug, and at its usual level only
// when they fail with a server fault: health checks (grpc.health.v1.Health, which
// a load balancer calls every few seconds) and server reflection
// (grpc.reflection.v1 and v1alpha). Other calls are logged as usual.
//
//	level := codeLevel(code)
//	if logs.Routine(spec.Procedure) && level == slog.LevelInfo {
//		level = slog.LevelDebug
//	}
func Routine(procedure string) bool {
	p := strings.TrimPrefix(procedure, "/")
	return strings.HasPrefix(p, "grpc.health.v1.Health/") ||
		strings.HasPrefix(p, "grpc.reflection.v1.ServerReflection/") ||
		strings.HasPrefix(p, "grpc.reflection.v1alpha.ServerReflection/")
}
