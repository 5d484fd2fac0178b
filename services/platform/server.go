// Package platform is the kit every TrialHub service is served with: one port that
// answers gRPC, gRPC-Web and Connect (JSON and binary, POST and GET), the standard
// interceptor chain (recover, telemetry, logging, authentication, authorization from
// the contract, validation), health, reflection, CORS and graceful shutdown.
//
// A service registers its generated handlers on Server.RPC and the platform does the
// rest:
//
//	srv := platform.NewServer("trial", platform.WithVerifier(verifier))
//	trialv1connect.RegisterTrialServiceHandler(srv.RPC(), trial.New(db))
//	err := srv.ListenAndServe(ctx, ":8080")
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"connectrpc.com/connect/v2/connectproto"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpcreflect/v2"
	"github.com/rs/cors"
)

// Server serves one process's Connect services on one port.
type Server struct {
	name   string
	opts   options
	rpc    *connect.Server
	health *Health
	mux    *http.ServeMux

	rules   ruleCache
	once    sync.Once
	handler http.Handler
}

type options struct {
	log               *slog.Logger
	verifier          TokenVerifier
	telemetry         connect.ServerInterceptor
	maxRequestBytes   int
	readHeaderTimeout time.Duration
	shutdownTimeout   time.Duration
	corsOrigins       []string
}

// Option configures a Server.
type Option func(*options)

// WithLogger sets the logger for RPC and server logs. Default: JSON to stderr.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithVerifier sets the access-token verifier. Without one, every token is refused
// and only public methods can be called.
func WithVerifier(v TokenVerifier) Option { return func(o *options) { o.verifier = v } }

// WithTelemetry puts an interceptor (OpenTelemetry tracing and metrics) right inside
// recover, so it sees every call, including refused ones. Default: none.
func WithTelemetry(i connect.ServerInterceptor) Option { return func(o *options) { o.telemetry = i } }

// WithMaxRequestBytes caps the size of one request message after decompression;
// larger requests fail with CodeResourceExhausted. Default 4 MiB.
func WithMaxRequestBytes(n int) Option { return func(o *options) { o.maxRequestBytes = n } }

// WithReadHeaderTimeout bounds how long a client may take to send request headers.
// Default 10s. There is deliberately no read or write timeout: they would cut
// streams; each RPC's deadline comes from its caller.
func WithReadHeaderTimeout(d time.Duration) Option {
	return func(o *options) { o.readHeaderTimeout = d }
}

// WithShutdownTimeout bounds how long graceful shutdown waits for in-flight calls.
// Default 30s.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithCORSOrigins lists the browser origins allowed to call the API ("*" for any).
// Tokens travel in the Authorization header, never in cookies, so allowing an origin
// grants it nothing a user did not hand it. Default: none (same-origin only).
func WithCORSOrigins(origins ...string) Option {
	return func(o *options) { o.corsOrigins = origins }
}

// NewServer returns a Server for the named service (the name appears in logs).
func NewServer(name string, opts ...Option) *Server {
	o := options{
		maxRequestBytes:   4 << 20,
		readHeaderTimeout: 10 * time.Second,
		shutdownTimeout:   30 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s := &Server{name: name, opts: o, health: NewHealth(), mux: http.NewServeMux()}
	validator, err := protovalidate.New()
	if err != nil {
		// protovalidate.New only fails on invalid options, and we pass none.
		panic(fmt.Sprintf("protovalidate: %v", err))
	}
	chain := []connect.ServerInterceptor{recoverer(o.log)}
	if o.telemetry != nil {
		chain = append(chain, o.telemetry)
	}
	chain = append(chain,
		logging(o.log, name),
		authenticate(o.log, o.verifier, &s.rules),
		authorize(&s.rules),
		validation(validator),
	)
	s.rpc = connect.NewServer(chain...)
	// Health and reflection are there from the start, for in-process callers too;
	// reflection lists whatever is registered when it is asked.
	s.health.register(s.rpc)
	grpcreflect.Register(s.rpc)
	return s
}

// RPC is the connect server to register generated handlers on, before Handler,
// Serve or ListenAndServe is first called. Calls through it in-process (for
// example with connectinprocess, to seed data) run the whole interceptor chain
// with each method's rule, whether or not Handler was called yet.
func (s *Server) RPC() *connect.Server { return s.rpc }

// Health is the server's health service; services mark themselves serving or not.
func (s *Server) Health() *Health { return s.health }

// Handle adds a plain HTTP route (the web app, /metrics) beside the RPC routes.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Policy is the authorization table of the methods registered so far, read from
// their descriptors as the chain reads them. Like Register, call it during setup,
// not concurrently with registration.
func (s *Server) Policy() *Policy { return NewPolicy(s.rpc.Specs()) }

// Handler returns the server's HTTP handler. The first call logs every registered
// method that has no authorization rule (it is denied) and mounts the routes of the
// methods registered so far; methods registered later are not served over HTTP.
func (s *Server) Handler() http.Handler {
	s.once.Do(func() {
		for _, p := range s.Policy().Unruled() {
			s.opts.log.Warn("method has no authorization rule; every call is denied", "procedure", p)
		}
		// JSON responses carry every scalar and list, defaults included: proto3 JSON
		// would otherwise drop `"intact": false` or `"exists": false`, the very
		// answers a curl user asked for.
		jsonCodec := connectproto.NewJSONCodec()
		jsonCodec.MarshalOptions.EmitDefaultValues = true
		connecthttp.Mount(s.mux, s.rpc,
			connecthttp.WithReadMaxBytes(s.opts.maxRequestBytes),
			connecthttp.WithCodecs(connectproto.NewBinaryCodec(), jsonCodec),
		)
		var h http.Handler = s.mux
		if len(s.opts.corsOrigins) > 0 {
			h = cors.New(cors.Options{
				AllowedOrigins: s.opts.corsOrigins,
				AllowedMethods: connectcors.AllowedMethods(),
				AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
				ExposedHeaders: connectcors.ExposedHeaders(),
				MaxAge:         7200,
			}).Handler(h)
		}
		s.handler = h
	})
	return s.handler
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, reports NOT_SERVING, and waits up to the shutdown timeout for in-flight
// calls to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC clients speak HTTP/2 without TLS inside the cluster
	hs := &http.Server{
		Handler:           s.Handler(),
		Protocols:         protocols,
		ReadHeaderTimeout: s.opts.readHeaderTimeout,
		// Idle keep-alive connections are closed after two minutes; open calls are
		// not affected (streams are bounded by their RPC deadlines instead).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.opts.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.opts.log.Info("serving", "service", s.name, "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.health.SetServing("", false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(shutdownCtx)
	if errors.Is(<-errc, http.ErrServerClosed) && err == nil {
		s.opts.log.Info("stopped", "service", s.name)
		return nil
	}
	return err
}

// ListenAndServe listens on addr (host:port) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}
