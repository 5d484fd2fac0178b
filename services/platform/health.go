package platform

import (
	"context"
	"sync"

	"connectrpc.com/connect/v2"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
)

// Health serves the standard gRPC health-checking protocol (grpc.health.v1.Health)
// on the platform's port, so Kubernetes probes, grpc-health-probe, grpcurl and curl
// (Connect JSON, GET or POST) can ask whether the process and each service is up.
//
// connectrpc.com/grpchealth has no Connect v2 release we can fetch yet, so this is
// the protocol's two methods written against the connect core; its messages come
// from google.golang.org/grpc's generated health package.
type Health struct {
	mu       sync.Mutex
	statuses map[string]healthv1.HealthCheckResponse_ServingStatus
	changed  chan struct{} // closed and replaced on every change, to wake watchers
	stopping bool          // set by shutdown: every status stays NOT_SERVING
}

// NewHealth returns a Health reporting the process ("" service) as SERVING.
func NewHealth() *Health {
	return &Health{
		statuses: map[string]healthv1.HealthCheckResponse_ServingStatus{"": healthv1.HealthCheckResponse_SERVING},
		changed:  make(chan struct{}),
	}
}

// SetServing marks a service (by its full name; "" for the whole process) serving
// or not serving. Once the server shuts down, every service stays NOT_SERVING and
// SetServing has no effect.
func (h *Health) SetServing(service string, serving bool) {
	status := healthv1.HealthCheckResponse_NOT_SERVING
	if serving {
		status = healthv1.HealthCheckResponse_SERVING
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return
	}
	h.statuses[service] = status
	h.notifyLocked()
}

// shutdown marks every service NOT_SERVING for good.
func (h *Health) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
	for service := range h.statuses {
		h.statuses[service] = healthv1.HealthCheckResponse_NOT_SERVING
	}
	h.notifyLocked()
}

func (h *Health) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Health) status(service string) (healthv1.HealthCheckResponse_ServingStatus, bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.statuses[service]
	return s, ok, h.changed
}

// register mounts the Health service's methods on server.
func (h *Health) register(server *connect.Server) {
	svc := healthv1.File_grpc_health_v1_health_proto.Services().ByName("Health")
	server.Register(
		connect.Method{
			Spec: connect.Spec{
				StreamType: connect.StreamTypeUnary,
				Procedure:  "/grpc.health.v1.Health/Check",
				Schema:     svc.Methods().ByName("Check"),
				// Reachable with HTTP GET: curl-friendly probes.
				IdempotencyLevel: connect.IdempotencyNoSideEffects,
			},
			Handler: h.check,
		},
		connect.Method{
			Spec: connect.Spec{
				StreamType: connect.StreamTypeServer,
				Procedure:  "/grpc.health.v1.Health/Watch",
				Schema:     svc.Methods().ByName("Watch"),
			},
			Handler: h.watch,
		},
	)
}

func (h *Health) check(_ context.Context, _ connect.Spec, stream connect.ServerStream) error {
	var req healthv1.HealthCheckRequest
	if err := stream.Receive(&req); err != nil {
		return err
	}
	status, ok, _ := h.status(req.GetService())
	if !ok {
		return connect.Errorf(connect.CodeNotFound, "unknown service %q", req.GetService())
	}
	return stream.Send(&healthv1.HealthCheckResponse{Status: status})
}

func (h *Health) watch(ctx context.Context, _ connect.Spec, stream connect.ServerStream) error {
	var req healthv1.HealthCheckRequest
	if err := stream.Receive(&req); err != nil {
		return err
	}
	last := healthv1.HealthCheckResponse_ServingStatus(-1)
	for {
		status, ok, changed := h.status(req.GetService())
		if !ok {
			status = healthv1.HealthCheckResponse_SERVICE_UNKNOWN
		}
		if status != last {
			if err := stream.Send(&healthv1.HealthCheckResponse{Status: status}); err != nil {
				return err
			}
			last = status
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
