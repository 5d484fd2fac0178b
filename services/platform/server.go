// Package platform is the kit every TrialHub service is served with: one port that
// answers gRPC, gRPC-Web and Connect (JSON and binary, POST and GET), the standard
// interceptor chain (request info, recover, telemetry, logging, per-call deadlines,
// authentication, authorization from the contract, validation), health,
// reflection, CORS and graceful shutdown.
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
	"net/netip"
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
	owners  *sync.Map // procedure -> the service that registered it (Own)
	once    sync.Once
	handler http.Handler
	shed    *shedder
}

type options struct {
	log               *slog.Logger
	verifier          TokenVerifier
	telemetry         connect.ServerInterceptor
	interceptors      []connect.ServerInterceptor
	middleware        []func(http.Handler) http.Handler
	trustedProxies    []netip.Prefix
	maxRequestBytes   int
	maxHeaderBytes    int
	maxStreams        int
	readHeaderTimeout time.Duration
	bodyReadTimeout   time.Duration
	unaryDefault      time.Duration
	unaryMax          time.Duration
	drainDelay        time.Duration
	shutdownTimeout   time.Duration
	corsOrigins       []string
	shedding          Shedding
	slowCall          time.Duration
}

// Option configures a Server.
type Option func(*options)

// WithLogger sets the logger for RPC and server logs. Default: JSON to stderr.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithSlowCall sets the duration from which a unary call's rpc line is logged at
// WARN (with "slow": true), whatever its code; streams, which may be open for
// hours, are not judged. Zero turns it off. Default 500 ms.
func WithSlowCall(d time.Duration) Option { return func(o *options) { o.slowCall = d } }

// WithVerifier sets the access-token verifier. Without one, every token is refused
// and only public methods can be called.
func WithVerifier(v TokenVerifier) Option { return func(o *options) { o.verifier = v } }

// WithTelemetry puts an interceptor (OpenTelemetry tracing and metrics) right inside
// request info and recover, outside logging, so it sees every call, including refused ones, with
// request.Info in its context. Default: none.
func WithTelemetry(i connect.ServerInterceptor) Option { return func(o *options) { o.telemetry = i } }

// WithInterceptors adds interceptors innermost, after validation and just before the
// handler: they see only authenticated, authorized calls (auth.CallerFrom works)
// and validated messages. They run in argument order, the first outermost; repeated
// options append. Default: none.
func WithInterceptors(interceptors ...connect.ServerInterceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, interceptors...) }
}

// WithMiddleware wraps the HTTP handler in middleware that runs before anything of
// the platform but the per-request read deadline: before CORS, authentication and
// the RPC routing, and for the plain routes (Handle) too. The first is outermost;
// repeated options append. Use it for metrics and tracing of every HTTP request;
// the kit's own load shedder (WithShedding) runs inside it. Default: none.
func WithMiddleware(middleware ...func(http.Handler) http.Handler) Option {
	return func(o *options) { o.middleware = append(o.middleware, middleware...) }
}

// WithTrustedProxies lists the networks of reverse proxies whose X-Forwarded-For
// header is believed: when the peer is in one of them, request.Info.ClientAddr is
// the rightmost X-Forwarded-For address outside them. Default: none, so the header
// is ignored and the client address is the TCP peer's.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return func(o *options) { o.trustedProxies = append(o.trustedProxies, prefixes...) }
}

// WithMaxRequestBytes caps the size of one request message after decompression;
// larger requests fail with CodeResourceExhausted. Default 4 MiB.
func WithMaxRequestBytes(n int) Option { return func(o *options) { o.maxRequestBytes = n } }

// WithMaxHeaderBytes caps the request headers: the HTTP/1.1 request line and
// headers, and the HTTP/2 header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE).
// Default 64 KiB (tokens are a few hundred bytes; net/http's own default is 1 MiB).
func WithMaxHeaderBytes(n int) Option { return func(o *options) { o.maxHeaderBytes = n } }

// WithMaxConcurrentStreams caps the calls one HTTP/2 connection may have open at
// once; a client wanting more opens another connection. Default 100.
func WithMaxConcurrentStreams(n int) Option { return func(o *options) { o.maxStreams = n } }

// WithReadHeaderTimeout bounds how long a client may take to send request headers.
// Default 10s. There is deliberately no http.Server read or write timeout: they
// would cut streams; see WithUnaryTimeouts and WithBodyReadTimeout instead.
func WithReadHeaderTimeout(d time.Duration) Option {
	return func(o *options) { o.readHeaderTimeout = d }
}

// WithUnaryTimeouts sets the server-side deadline of unary calls: def for a call
// whose caller sent no deadline, limit as the latest any caller may ask for (a
// shorter deadline of the caller's wins). Reading a unary request's body ends at the
// same deadline. Streams are not affected. A def of zero or above limit means limit;
// both zero means no server-side deadline. Default 30s and 2m.
func WithUnaryTimeouts(def, limit time.Duration) Option {
	return func(o *options) { o.unaryDefault, o.unaryMax = def, limit }
}

// WithBodyReadTimeout bounds reading the body of a plain HTTP route (Handle) and
// the request message of a server-streaming call, from when the headers arrived.
// Unary calls use their deadline instead, client and bidi streams have none. Zero
// disables it. Default 30s.
func WithBodyReadTimeout(d time.Duration) Option { return func(o *options) { o.bodyReadTimeout = d } }

// WithDrainDelay is how long Serve keeps serving, reporting NOT_SERVING on every
// health service, before it stops accepting connections: time for probes and load
// balancers to see the change and send traffic elsewhere. Default 5s; 0 for tests
// and the dev stack.
func WithDrainDelay(d time.Duration) Option { return func(o *options) { o.drainDelay = d } }

// WithShutdownTimeout bounds how long graceful shutdown waits for in-flight unary
// calls after the drain delay (streams are ended at once). When it passes, the
// calls' contexts are cancelled and connections closed. Default 20s, so the drain
// delay and the shutdown fit Kubernetes' default 30s grace period.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithCORSOrigins lists the browser origins allowed to call the API ("*" for any).
// Tokens travel in the Authorization header, never in cookies, so allowing an origin
// grants it nothing a user did not hand it. Default: none (same-origin only).
func WithCORSOrigins(origins ...string) Option {
	return func(o *options) { o.corsOrigins = origins }
}

// DefaultSlowCall is the duration from which a call is logged at WARN as slow.
const DefaultSlowCall = 500 * time.Millisecond

// NewServer returns a Server for the named service (the name appears in logs).
func NewServer(name string, opts ...Option) *Server {
	o := options{
		maxRequestBytes:   4 << 20,
		maxHeaderBytes:    64 << 10,
		maxStreams:        100,
		readHeaderTimeout: 10 * time.Second,
		bodyReadTimeout:   30 * time.Second,
		unaryDefault:      30 * time.Second,
		unaryMax:          2 * time.Minute,
		drainDelay:        5 * time.Second,
		shutdownTimeout:   20 * time.Second,
		slowCall:          DefaultSlowCall,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s := &Server{name: name, opts: o, health: NewHealth(), mux: http.NewServeMux(), owners: &sync.Map{}}
	validator, err := protovalidate.New()
	if err != nil {
		// protovalidate.New only fails on invalid options, and we pass none.
		panic(fmt.Sprintf("protovalidate: %v", err))
	}
	// The chain; see the comment at the top of interceptors.go.
	chain := []connect.ServerInterceptor{requestInfo(o.trustedProxies), recoverer(o.log)}
	if o.telemetry != nil {
		chain = append(chain, o.telemetry)
	}
	chain = append(chain,
		logging(o.log, name, o.slowCall, s.owners),
		recoverer(o.log),
		lifetime(o.unaryDefault, o.unaryMax),
		authenticate(o.log, o.verifier, &s.rules),
		authorize(&s.rules),
		validation(validator),
	)
	chain = append(chain, o.interceptors...)
	s.rpc = connect.NewServer(chain...)
	// Health and reflection are there from the start, for in-process callers too;
	// reflection lists whatever is registered when it is asked.
	s.health.register(s.rpc)
	grpcreflect.Register(s.rpc)
	s.Own(name) // health and reflection are the process's
	return s
}

// RPC is the connect server to register generated handlers on, before Handler,
// Serve or ListenAndServe is first called. Calls through it in-process (for
// example with connectinprocess, to seed data) run the whole interceptor chain
// with each method's rule, whether or not Handler was called yet.
func (s *Server) RPC() *connect.Server { return s.rpc }

// Own names service as the owner of every method registered so far that has
// none: their rpc log lines say "service": service instead of the server's name
// (the dev stack serves every service on one server). Call it during setup,
// after the service registered its handlers.
func (s *Server) Own(service string) {
	for spec := range s.rpc.Specs() {
		s.owners.LoadOrStore(spec.Procedure, service)
	}
}

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
		// Innermost first: the mux, CORS, the load shedder, the middleware, the read
		// deadline.
		var h http.Handler = s.mux
		if len(s.opts.corsOrigins) > 0 {
			h = cors.New(cors.Options{
				AllowedOrigins: s.opts.corsOrigins,
				AllowedMethods: connectcors.AllowedMethods(),
				AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization", "X-Request-Id", "X-App-Version"),
				ExposedHeaders: append(connectcors.ExposedHeaders(), "X-Request-Id"),
				MaxAge:         7200,
			}).Handler(h)
		}
		if !s.opts.shedding.Disabled {
			streams := map[string]bool{}
			for spec := range s.rpc.Specs() {
				streams[spec.Procedure] = spec.StreamType != connect.StreamTypeUnary
			}
			s.shed = newShedder(s.opts.shedding, func(p string) bool { return streams[p] })
			h = s.shed.middleware(h)
		}
		for i := len(s.opts.middleware) - 1; i >= 0; i-- {
			h = s.opts.middleware[i](h)
		}
		h = readDeadlines(s.opts.bodyReadTimeout, h)
		s.handler = h
	})
	return s.handler
}

// Shedding reports what the load shedder has done; zero before Handler is first
// called or when shedding is disabled.
func (s *Server) Shedding() ShedStats {
	s.Handler() // the shedder is built with the routes
	if s.shed == nil {
		return ShedStats{}
	}
	return s.shed.stats()
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it reports
// NOT_SERVING on every health service and keeps serving for the drain delay, then
// stops accepting, ends every open stream (unavailable) and waits up to the
// shutdown timeout for unary calls in flight. When that passes it cancels their
// contexts, closes the connections and returns an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Every request's context derives from base; streams from the value in it.
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	streams, stopStreams := context.WithCancelCause(base)
	defer stopStreams(nil)
	reqBase := context.WithValue(base, streamsKey{}, streams)

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC clients speak HTTP/2 without TLS inside the cluster
	hs := &http.Server{
		Handler:           s.Handler(),
		Protocols:         protocols,
		ReadHeaderTimeout: s.opts.readHeaderTimeout,
		MaxHeaderBytes:    s.opts.maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.opts.maxStreams},
		// Idle keep-alive connections are closed after two minutes; open calls are
		// not affected (they are bounded per call, see limits.go).
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return reqBase },
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
	s.health.shutdown()
	if d := s.opts.drainDelay; d > 0 {
		s.opts.log.Info("draining", "service", s.name, "delay", d.String())
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case err := <-errc:
			timer.Stop()
			return err
		}
	}
	stopStreams(errShuttingDown)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		cancelBase(fmt.Errorf("%w: shutdown timeout passed", errShuttingDown))
		_ = hs.Close()
		<-errc
		s.opts.log.Warn("stopped with calls still running", "service", s.name, "timeout", s.opts.shutdownTimeout.String())
		return fmt.Errorf("shutdown of %s: calls still running after %s were cancelled and their connections closed: %w",
			s.name, s.opts.shutdownTimeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.opts.log.Info("stopped", "service", s.name)
	return nil
}

// ListenAndServe listens on addr (host:port) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}
