package client_test

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	eprov1 "github.com/trialhub/trialhub/gen/go/trialhub/epro/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/epro/v1/eprov1connect"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
)

const issuer = "trialhub-test"

// Procedures the tests call, by how safe they are to send twice.
const (
	getStatus     = patientv1connect.PatientServiceGetSubjectStatusProcedure // NO_SIDE_EFFECTS
	updateProfile = patientv1connect.PatientServiceUpdateProfileProcedure    // IDEMPOTENT
	login         = patientv1connect.AuthServiceLoginProcedure               // a write, no key
	register      = patientv1connect.AuthServiceRegisterProcedure            // a write with idempotency_key
)

// fault is what the misbehaving server does with one attempt instead of serving it.
// The zero fault serves the attempt.
type fault struct {
	status     int    // answer with this HTTP status, as a proxy or load balancer would
	retryAfter string // with this Retry-After header
	// contentType and body of the status answer; default text/plain and the
	// status text
	contentType, body string
	drop              bool // close the connection before any response: a transport error
	reset             bool // with drop: reset it (RST) rather than close it
}

var (
	unavailable = fault{status: http.StatusServiceUnavailable}
	drop        = fault{drop: true}
	reset       = fault{drop: true, reset: true}
)

// server is a platform server on a real loopback listener with a fault-injecting
// middleware in front: it counts every attempt per procedure and answers the
// scripted ones with an HTTP error or a dropped connection before the platform
// (and so the handler) sees them.
type server struct {
	url    string
	signer *auth.Signer
	ln     *trackingListener

	mu       sync.Mutex
	arrivals map[string][]time.Time // every attempt per procedure, in order
	script   map[string][]fault     // faults for the next attempts per procedure
	always   map[string]fault       // fault for every attempt once the script is used up
	status   statusFunc             // what GetSubjectStatus does when served
}

type statusFunc func(context.Context, *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error)

func healthyStatus(_ context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	return &patientv1.GetSubjectStatusResponse{SubjectUuid: req.GetSubjectUuid(), Exists: true}, nil
}

func newServer(t *testing.T) *server {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{
		signer:   auth.NewSigner(key, issuer),
		arrivals: map[string][]time.Time{},
		script:   map[string][]fault{},
		always:   map[string]fault{},
		status:   healthyStatus,
	}
	verifier := auth.NewVerifier(auth.StaticKeys{s.signer.PublicKey()}, issuer)
	srv := platform.NewServer("patient",
		platform.WithLogger(slog.New(slog.DiscardHandler)),
		platform.WithVerifier(verifier))
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), patients{s: s})
	patientv1connect.RegisterAuthServiceHandler(srv.RPC(), accounts{})
	eprov1connect.RegisterEproServiceHandler(srv.RPC(), exports{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = &trackingListener{Listener: ln, conns: map[string]net.Conn{}}
	s.url = "http://" + ln.Addr().String()
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // the client speaks gRPC over h2c
	hs := &http.Server{
		Handler:           s.faults(srv.Handler()),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // dropped connections are the point
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(s.ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
	return s
}

// faults is the middleware that misbehaves.
func (s *server) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := s.arrive(r.URL.Path)
		switch {
		case f.drop:
			// HTTP/2 connections cannot be hijacked; close the TCP connection under
			// the server instead, which fails every stream on it at once.
			s.ln.drop(r.RemoteAddr, f.reset)
		case f.status != 0:
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			contentType, body := "text/plain", http.StatusText(f.status)
			if f.contentType != "" {
				contentType, body = f.contentType, f.body
			}
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(f.status)
			_, _ = io.WriteString(w, body)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (s *server) arrive(procedure string) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals[procedure] = append(s.arrivals[procedure], time.Now())
	if q := s.script[procedure]; len(q) > 0 {
		s.script[procedure] = q[1:]
		return q[0]
	}
	return s.always[procedure]
}

// fail scripts the next attempts of procedure; later attempts meet the fault set by
// failAlways, or are served.
func (s *server) fail(procedure string, faults ...fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[procedure] = append(s.script[procedure], faults...)
}

// failAlways makes every unscripted attempt of procedure meet f; fault{} heals it.
func (s *server) failAlways(procedure string, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always[procedure] = f
}

// serveStatus sets what GetSubjectStatus does for attempts that reach it.
func (s *server) serveStatus(f statusFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = f
}

// attempts is how many attempts of procedure reached the server.
func (s *server) attempts(procedure string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrivals[procedure])
}

// arrivalTimes is when each attempt of procedure reached the server.
func (s *server) arrivalTimes(procedure string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals[procedure]...)
}

// dependency describes the server as a dependency, with backoffs short enough for
// tests; tests change the fields they are about.
func (s *server) dependency() client.Dependency {
	return client.Dependency{
		Name:        "patient",
		BaseURL:     s.url,
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
	}
}

// serviceTokens mints the tokens of the epro service, which the server trusts.
func (s *server) serviceTokens() auth.TokenSource {
	return auth.NewSignerTokens(s.signer, auth.Caller{Subject: "epro", Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
}

// patients returns a PatientService client for dep calling as the epro service;
// opts come after the defaults, so they win.
func (s *server) patients(dep client.Dependency, opts ...client.Option) patientv1connect.PatientServiceClient {
	return patientv1connect.NewPatientServiceClient(s.client(dep, opts...))
}

// accounts returns an AuthService client for dep.
func (s *server) accounts(dep client.Dependency, opts ...client.Option) patientv1connect.AuthServiceClient {
	return patientv1connect.NewAuthServiceClient(s.client(dep, opts...))
}

func (s *server) client(dep client.Dependency, opts ...client.Option) *connect.Client {
	opts = append([]client.Option{
		client.WithTokens(s.serviceTokens()),
		client.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	return client.New(dep, opts...)
}

// exports streams one header, then waits until the caller goes away: a long
// export whose caller may abandon it.
type exports struct {
	eprov1connect.UnimplementedEproServiceHandler
}

func (exports) ExportResponses(ctx context.Context, _ *eprov1.ExportResponsesRequest, stream eprov1connect.EproServiceExportResponsesServerStream) error {
	if err := stream.Send(&eprov1.ExportResponsesResponse{Part: &eprov1.ExportResponsesResponse_Header{
		Header: &eprov1.ExportHeader{}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// trackingListener remembers each accepted connection by its remote address, so
// the middleware can close the one a request came in on.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c.RemoteAddr().String()] = c
		l.mu.Unlock()
	}
	return c, err
}

// drop closes the connection from remoteAddr; with reset, it discards what is
// unsent and answers RST, so the client reads "connection reset by peer".
func (l *trackingListener) drop(remoteAddr string, reset bool) {
	l.mu.Lock()
	c := l.conns[remoteAddr]
	delete(l.conns, remoteAddr)
	l.mu.Unlock()
	if c == nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// patients serves PatientService: GetSubjectStatus as the test says, UpdateProfile
// for the calling patient.
type patients struct {
	patientv1connect.UnimplementedPatientServiceHandler
	s *server
}

func (p patients) GetSubjectStatus(ctx context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	p.s.mu.Lock()
	f := p.s.status
	p.s.mu.Unlock()
	return f(ctx, req)
}

func (patients) UpdateProfile(ctx context.Context, req *patientv1.UpdateProfileRequest) (*patientv1.UpdateProfileResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	return &patientv1.UpdateProfileResponse{SubjectUuid: caller.Subject, Profile: req.GetProfile()}, nil
}

// accounts serves the AuthService writes: Login and Register.
type accounts struct {
	patientv1connect.UnimplementedAuthServiceHandler
}

func (accounts) Login(context.Context, *patientv1.LoginRequest) (*patientv1.LoginResponse, error) {
	return &patientv1.LoginResponse{
		Role:      authzv1.Role_ROLE_PATIENT,
		Principal: &patientv1.LoginResponse_SubjectUuid{SubjectUuid: uuid.NewString()},
	}, nil
}

func (accounts) Register(_ context.Context, req *patientv1.RegisterRequest) (*patientv1.RegisterResponse, error) {
	// The same key returns the same registration, as the contract promises.
	return &patientv1.RegisterResponse{Outcome: &patientv1.RegisterResponse_CodeSent{CodeSent: &patientv1.RegistrationPending{
		RegistrationId: uuid.NewSHA1(uuid.NameSpaceOID, []byte(req.GetIdempotencyKey())).String(),
	}}}, nil
}

// Requests that pass the contract's validation.
func statusRequest() *patientv1.GetSubjectStatusRequest {
	return &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()}
}

func loginRequest() *patientv1.LoginRequest {
	return &patientv1.LoginRequest{
		Identifier: &patientv1.LoginRequest_Mobile{Mobile: "+4915112345678"},
		Password:   "correct horse battery staple",
	}
}

func registerRequest(idempotencyKey string) *patientv1.RegisterRequest {
	return &patientv1.RegisterRequest{
		Mobile:            "+4915112345678",
		Password:          "correct horse battery staple",
		FullName:          "Erika Mustermann",
		NationalId:        "T22000129",
		NationalIdCountry: "DE",
		IdempotencyKey:    idempotencyKey,
	}
}

// message is the message of a Connect error, without the code.
func message(err error) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Message()
	}
	return ""
}
