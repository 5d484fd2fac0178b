package platform_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"connectrpc.com/connect/v2/connectinprocess"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"

	validatepb "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	trialv1 "github.com/trialhub/trialhub/gen/go/trialhub/trial/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/trial/v1/trialv1connect"
	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/internal/logbuf"
)

const issuer = "trialhub-test"

// fixture is a platform server on a real loopback listener, serving test handlers
// of contract services.
type fixture struct {
	t       testing.TB
	url     string
	addr    string
	key     auth.Key // the key the server trusts, for hand-made tokens
	signer  *auth.Signer
	entered chan struct{} // receives when a blocked GetPatientIdentity has started
	logs    *logbuf.Buffer
	release chan struct{} // closes to let a blocked GetPatientIdentity return
	// cancelled receives the cause when a GetPatientIdentity waiting for its
	// context to end sees it end.
	cancelled chan error
	srv       *platform.Server
	cancel    context.CancelFunc
	done      chan error
}

// patients implements a few PatientService methods the way a real handler would
// use the platform: the caller from the context, the request already validated.
type patients struct {
	patientv1connect.UnimplementedPatientServiceHandler
	release   chan struct{}
	entered   chan struct{}
	cancelled chan error
}

func (patients) GetProfile(ctx context.Context, _ *patientv1.GetProfileRequest) (*patientv1.GetProfileResponse, error) {
	caller, _ := auth.CallerFrom(ctx)
	return &patientv1.GetProfileResponse{SubjectUuid: caller.Subject}, nil
}

func (patients) GetSubjectStatus(_ context.Context, req *patientv1.GetSubjectStatusRequest) (*patientv1.GetSubjectStatusResponse, error) {
	return &patientv1.GetSubjectStatusResponse{SubjectUuid: req.GetSubjectUuid(), Exists: true}, nil
}

func (p patients) GetPatientIdentity(ctx context.Context, req *patientv1.GetPatientIdentityRequest) (*patientv1.GetPatientIdentityResponse, error) {
	switch req.GetReason() {
	case "trigger a panic please":
		panic("secret internal state")
	case "fail with a plain error":
		return nil, fmt.Errorf("load identity: %w", errors.New("dial tcp 10.0.0.5:5432: connection refused"))
	case "fail with a cause":
		return nil, connect.NewError(connect.CodeInternal, "could not load the identity").
			WithCause(errors.New(`pq: relation "vault" does not exist`))
	case "fail with a remote verdict":
		// What a generated client returns when another service answered not_found.
		return nil, fmt.Errorf("ask trial: %w", connect.NewError(connect.CodeNotFound, "no such trial").WithRemote())
	case "fail with the context":
		return nil, fmt.Errorf("query: %w", context.DeadlineExceeded)
	case "refuse as not found":
		return nil, connect.NewError(connect.CodeNotFound, "no such subject")
	case "block until cancelled":
		p.entered <- struct{}{}
		<-ctx.Done()
		p.cancelled <- context.Cause(ctx)
		return nil, ctx.Err()
	case "block until released":
		p.entered <- struct{}{}
		<-p.release
	}
	return &patientv1.GetPatientIdentityResponse{SubjectUuid: req.GetSubjectUuid()}, nil
}

type keys struct {
	patientv1connect.UnimplementedAuthServiceHandler
}

func (keys) GetSigningKeys(context.Context, *patientv1.GetSigningKeysRequest) (*patientv1.GetSigningKeysResponse, error) {
	return &patientv1.GetSigningKeysResponse{Issuer: issuer}, nil
}

type plans struct {
	trialv1connect.UnimplementedTrialServiceHandler
}

func (plans) GetSubjectVisitPlan(_ context.Context, req *trialv1.GetSubjectVisitPlanRequest) (*trialv1.GetSubjectVisitPlanResponse, error) {
	return &trialv1.GetSubjectVisitPlanResponse{Enrollment: &trialv1.Enrollment{SubjectUuid: req.GetSubjectUuid()}}, nil
}

// unruledProcedure is a method whose descriptor carries no trialhub.authz.v1 rule.
const unruledProcedure = "/test.v1.UnruledService/Call"

func registerUnruled(t testing.TB, server *connect.Server) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/v1/unruled.proto"),
		Package:    proto.String("test.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/empty.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("UnruledService"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name:       proto.String("Call"),
				InputType:  proto.String(".google.protobuf.Empty"),
				OutputType: proto.String(".google.protobuf.Empty"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	server.Register(connect.Method{
		Spec: connect.Spec{
			StreamType: connect.StreamTypeUnary,
			Procedure:  unruledProcedure,
			Schema:     fd.Services().Get(0).Methods().Get(0),
		},
		Handler: func(_ context.Context, _ connect.Spec, stream connect.ServerStream) error {
			var in emptypb.Empty
			if err := stream.Receive(&in); err != nil {
				return err
			}
			return stream.Send(&emptypb.Empty{})
		},
	})
}

func newFixture(t testing.TB, opts ...platform.Option) *fixture {
	t.Helper()
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, key: key, signer: auth.NewSigner(key, issuer), entered: make(chan struct{}, 1), logs: &logbuf.Buffer{}, release: make(chan struct{}), cancelled: make(chan error, 1), done: make(chan error, 1)}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	verifier := auth.NewVerifier(auth.StaticKeys{f.signer.PublicKey()}, issuer)
	opts = append([]platform.Option{
		platform.WithLogger(log),
		platform.WithVerifier(verifier),
		platform.WithCORSOrigins("https://app.example"),
		platform.WithShutdownTimeout(5 * time.Second),
		platform.WithDrainDelay(0),
	}, opts...)
	srv := platform.NewServer("test", opts...)
	f.srv = srv
	p := patients{release: f.release, entered: f.entered, cancelled: f.cancelled}
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), p)
	patientv1connect.RegisterAuthServiceHandler(srv.RPC(), keys{})
	trialv1connect.RegisterTrialServiceHandler(srv.RPC(), plans{})
	registerUnruled(t, srv.RPC())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.url = "http://" + f.addr
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return f
}

func (f *fixture) token(role authzv1.Role, subject string, sites ...string) string {
	f.t.Helper()
	tok, _, err := f.signer.Sign(auth.Caller{Subject: subject, Role: role, Sites: sites}, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// connectClient returns a Connect-protocol client over HTTP/1.1 with the token.
func (f *fixture) client(token string, opts ...connecthttp.Option) *connect.Client {
	return connect.NewClient(connecthttp.NewTransport(http.DefaultClient, f.url, opts...), withToken(token))
}

func withToken(token string) connect.ClientInterceptor {
	return func(next connect.ClientFunc) connect.ClientFunc {
		return func(ctx context.Context, spec connect.Spec) (connect.ClientStream, error) {
			if token != "" {
				var info *connect.CallInfo
				ctx, info = connect.NewClientContext(ctx)
				info.RequestHeader().Set("Authorization", "Bearer "+token)
			}
			return next(ctx, spec)
		}
	}
}

// grpcClient returns a gRPC-protocol client over HTTP/2 without TLS, with the token.
func (f *fixture) grpcClient(token string) *connect.Client {
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: h2c}}
	f.t.Cleanup(hc.CloseIdleConnections)
	return connect.NewClient(connecthttp.NewTransport(hc, f.url, connecthttp.WithGRPC()), withToken(token))
}

func (f *fixture) grpcConn() *grpc.ClientConn {
	f.t.Helper()
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

func grpcAuth(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func TestOnePortServesGRPCGRPCWebAndConnectJSON(t *testing.T) {
	f := newFixture(t)
	service := f.token(authzv1.Role_ROLE_SERVICE, "epro")
	subject := uuid.NewString()
	ctx := context.Background()

	t.Run("grpc", func(t *testing.T) {
		var res patientv1.GetSubjectStatusResponse
		err := f.grpcConn().Invoke(grpcAuth(ctx, service), patientv1connect.PatientServiceGetSubjectStatusProcedure,
			&patientv1.GetSubjectStatusRequest{SubjectUuid: subject}, &res)
		if err != nil || res.GetSubjectUuid() != subject || !res.GetExists() {
			t.Fatalf("grpc: res=%v err=%v", &res, err)
		}
	})
	t.Run("grpc-web", func(t *testing.T) {
		c := patientv1connect.NewPatientServiceClient(f.client(service, connecthttp.WithGRPCWeb()))
		res, err := c.GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: subject})
		if err != nil || res.GetSubjectUuid() != subject {
			t.Fatalf("grpc-web: res=%v err=%v", res, err)
		}
	})
	t.Run("connect json POST over HTTP/1.1", func(t *testing.T) {
		body := `{"subjectUuid":"` + subject + `"}`
		res, out := f.do(t, http.MethodPost, patientv1connect.PatientServiceGetSubjectStatusProcedure, service, body)
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 1 {
			t.Fatalf("status %s proto %s: %s", res.Status, res.Proto, out)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil || got["subjectUuid"] != subject || got["exists"] != true {
			t.Fatalf("body %s (err %v)", out, err)
		}
	})
	t.Run("json answers keep false and empty values", func(t *testing.T) {
		res, out := f.do(t, http.MethodPost, patientv1connect.AuthServiceGetSigningKeysProcedure, "", `{}`)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(out), `"keys":[]`) {
			t.Fatalf("GetSigningKeys: %s %s, want an explicit empty keys list", res.Status, out)
		}
	})
	t.Run("connect GET for NO_SIDE_EFFECTS", func(t *testing.T) {
		q := url.Values{"encoding": {"json"}, "message": {`{"subjectUuid":"` + subject + `"}`}}
		res, out := f.do(t, http.MethodGet, patientv1connect.PatientServiceGetSubjectStatusProcedure+"?"+q.Encode(), service, "")
		if res.StatusCode != http.StatusOK || !strings.Contains(string(out), subject) {
			t.Fatalf("GET: %s %s", res.Status, out)
		}
	})
	t.Run("health over grpc and json", func(t *testing.T) {
		hc, err := healthv1.NewHealthClient(f.grpcConn()).Check(ctx, &healthv1.HealthCheckRequest{})
		if err != nil || hc.GetStatus() != healthv1.HealthCheckResponse_SERVING {
			t.Fatalf("grpc health: %v %v", hc, err)
		}
		res, out := f.do(t, http.MethodPost, "/grpc.health.v1.Health/Check", "", `{}`)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(out), "SERVING") {
			t.Fatalf("json health: %s %s", res.Status, out)
		}
		res, out = f.do(t, http.MethodGet, "/grpc.health.v1.Health/Check?encoding=json&message=%7B%7D", "", "")
		if res.StatusCode != http.StatusOK || !strings.Contains(string(out), "SERVING") {
			t.Fatalf("GET health: %s %s", res.Status, out)
		}
		_, err = healthv1.NewHealthClient(f.grpcConn()).Check(ctx, &healthv1.HealthCheckRequest{Service: "no.such.Service"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("unknown service: %v, want NotFound", err)
		}
	})
	t.Run("reflection lists the services", func(t *testing.T) {
		stream, err := reflectionv1.NewServerReflectionClient(f.grpcConn()).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{ListServices: "*"},
		}); err != nil {
			t.Fatal(err)
		}
		res, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range res.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"trialhub.patient.v1.PatientService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} {
			if !strings.Contains(strings.Join(names, " "), want) {
				t.Errorf("reflection services %v lack %s", names, want)
			}
		}
	})
}

// do sends a curl-shaped Connect JSON request over HTTP/1.1.
func (f *fixture) do(t *testing.T, method, path, token, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, out
}

func TestRejectedTokens(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	other, _ := auth.NewKey()
	claims := func(mut func(*auth.Claims)) auth.Claims {
		c := auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: issuer, Subject: "epro", Audience: jwt.ClaimStrings{auth.Audience},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)),
				NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			},
			Role: "SERVICE",
		}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	signEd := func(key auth.Key, kid string, c auth.Claims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kid
		tok.Header["typ"] = auth.TokenType
		s, err := tok.SignedString(key.Private)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	kid := f.key.ID
	valid := f.token(authzv1.Role_ROLE_SERVICE, "epro")
	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	mustJSON := func(v any) string { b, _ := json.Marshal(v); return b64(b) }

	hs256 := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hs256.Header["kid"] = kid
	hsToken, err := hs256.SignedString([]byte(f.signer.PublicKey().Key))
	if err != nil {
		t.Fatal(err)
	}
	_, forgedPriv, _ := ed25519.GenerateKey(rand.Reader)
	forged := auth.Key{ID: kid, Private: forgedPriv}

	cases := map[string]string{
		"alg none":              mustJSON(map[string]string{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".",
		"HS256 with public key": hsToken,
		"wrong signature":       signEd(forged, kid, claims(nil)),
		"unknown kid":           signEd(other, other.ID, claims(nil)),
		"malformed":             "not.a.jwt",
		"garbage":               "%%%",
		"payload swapped":       parts[0] + "." + mustJSON(claims(func(c *auth.Claims) { c.Role = "ADMIN" })) + "." + parts[2],
	}
	// Cases signed with the trusted key, wrong only in their claims.
	trusted := func(mut func(*auth.Claims)) string {
		return signWithFixtureKey(t, f, claims(mut))
	}
	cases["not yet valid"] = trusted(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })
	cases["wrong issuer"] = trusted(func(c *auth.Claims) { c.Issuer = "someone-else" })
	cases["wrong audience"] = trusted(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"another-api"} })
	cases["expired"] = trusted(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) })
	cases["no expiry"] = trusted(func(c *auth.Claims) { c.ExpiresAt = nil })
	// A token of another type (a refresh, invitation or reset token signed with the
	// same key) never passes as an access token (RFC 9068).
	untyped := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims(nil))
	untyped.Header["kid"], untyped.Header["typ"] = kid, "JWT"
	if cases["typ JWT"], err = untyped.SignedString(f.key.Private); err != nil {
		t.Fatal(err)
	}

	// The baseline passes, so each failure below is the token's fault.
	c := patientv1connect.NewPatientServiceClient(f.client(signWithFixtureKey(t, f, claims(nil))))
	if _, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()}); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c := patientv1connect.NewPatientServiceClient(f.client(tok))
			_, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()})
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("code = %v (%v), want unauthenticated", connect.CodeOf(err), err)
			}
			var cerr *connect.Error
			if errors.As(err, &cerr) && cerr.Message() != "invalid bearer token" {
				t.Errorf("message %q tells the caller more than that the token is invalid", cerr.Message())
			}
		})
	}
	t.Run("scheme is case-insensitive, others are refused", func(t *testing.T) {
		good := signWithFixtureKey(t, f, claims(nil))
		for header, want := range map[string]int{
			"bearer " + good: http.StatusOK,
			"BEARER " + good: http.StatusOK,
			"Basic " + good:  http.StatusUnauthorized,
			good:             http.StatusUnauthorized,
		} {
			req, _ := http.NewRequest(http.MethodPost, f.url+patientv1connect.PatientServiceGetSubjectStatusProcedure,
				strings.NewReader(`{"subjectUuid":"`+uuid.NewString()+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", header)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("Authorization %q...: %s, want %d", header[:12], res.Status, want)
			}
		}
	})
	t.Run("missing token", func(t *testing.T) {
		c := patientv1connect.NewPatientServiceClient(f.client(""))
		_, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("code = %v, want unauthenticated", connect.CodeOf(err))
		}
	})
	t.Run("public method works without a token and ignores a bad one", func(t *testing.T) {
		for _, tok := range []string{"", "not.a.jwt"} {
			c := patientv1connect.NewAuthServiceClient(f.client(tok))
			res, err := c.GetSigningKeys(context.Background(), &patientv1.GetSigningKeysRequest{})
			if err != nil || res.GetIssuer() != issuer {
				t.Fatalf("token %q: %v %v", tok, res, err)
			}
		}
	})
}

// signWithFixtureKey signs hand-made claims with the key the fixture trusts.
func signWithFixtureKey(t *testing.T, f *fixture, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = f.key.ID
	tok.Header["typ"] = auth.TokenType
	s, err := tok.SignedString(f.key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin := f.token(authzv1.Role_ROLE_ADMIN, "admin-1")

	t.Run("method without a rule is denied", func(t *testing.T) {
		res, out := f.do(t, http.MethodPost, unruledProcedure, admin, `{}`)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(out), "permission_denied") {
			t.Fatalf("%s %s, want 403 permission_denied", res.Status, out)
		}
	})
	t.Run("wrong role", func(t *testing.T) {
		c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_PATIENT, uuid.NewString())))
		_, err := c.GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()})
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("patient calling a SERVICE/ADMIN method: %v, want permission_denied", err)
		}
		analyst := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ANALYST, "a-1")))
		_, err = analyst.GetPatientIdentity(ctx, &patientv1.GetPatientIdentityRequest{SubjectUuid: uuid.NewString(), Reason: "looking at PII"})
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("analyst reading identity: %v, want permission_denied", err)
		}
	})
	t.Run("caller reaches the handler", func(t *testing.T) {
		subject := uuid.NewString()
		c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_PATIENT, subject)))
		res, err := c.GetProfile(ctx, &patientv1.GetProfileRequest{})
		if err != nil || res.GetSubjectUuid() != subject {
			t.Fatalf("GetProfile: %v %v, want subject %s", res, err, subject)
		}
	})
	t.Run("a patient's subject comes from the token", func(t *testing.T) {
		subject := uuid.NewString()
		c := trialv1connect.NewTrialServiceClient(f.client(f.token(authzv1.Role_ROLE_PATIENT, subject)))
		res, err := c.GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{TrialId: uuid.NewString()})
		if err != nil || res.GetEnrollment().GetSubjectUuid() != subject {
			t.Fatalf("own plan: %v %v", res, err)
		}
		_, err = c.GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{SubjectUuid: uuid.NewString(), TrialId: uuid.NewString()})
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("another subject's plan: %v, want permission_denied", err)
		}
		// Staff on the same method name the subject themselves.
		other := uuid.NewString()
		staff := trialv1connect.NewTrialServiceClient(f.client(f.token(authzv1.Role_ROLE_INVESTIGATOR, "inv-1", "site-1")))
		res, err = staff.GetSubjectVisitPlan(ctx, &trialv1.GetSubjectVisitPlanRequest{SubjectUuid: other, TrialId: uuid.NewString()})
		if err != nil || res.GetEnrollment().GetSubjectUuid() != other {
			t.Fatalf("investigator: %v %v", res, err)
		}
	})
	t.Run("every registered contract method has a rule", func(t *testing.T) {
		// The server logs each unruled method at start; only the test-only one may be.
		for _, line := range strings.Split(f.logs.String(), "\n") {
			if strings.Contains(line, "no authorization rule") && !strings.Contains(line, unruledProcedure) {
				t.Errorf("unexpected unruled method: %s", line)
			}
		}
	})
}

func TestUnauthenticatedLargeBodyIsRefusedBeforeItIsRead(t *testing.T) {
	f := newFixture(t)
	// rawPost announces a 64 MiB body but sends only the headers and 1 KiB of it,
	// then waits for an answer. A server that reads the body before checking the
	// token cannot answer: it waits for the rest.
	rawPost := func(token string, wait time.Duration) (string, error) {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		head := "POST " + patientv1connect.PatientServiceGetSubjectStatusProcedure + " HTTP/1.1\r\n" +
			"Host: " + f.addr + "\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n"
		if token != "" {
			head += "Authorization: Bearer " + token + "\r\n"
		}
		if _, err := io.WriteString(conn, head+"\r\n"+strings.Repeat(" ", 1024)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}
	out, err := rawPost("", 10*time.Second)
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 401") || !strings.Contains(out, "unauthenticated") {
		t.Fatalf("unauthenticated 64 MiB request: %q, %v; want 401 unauthenticated before the body is sent", out, err)
	}
	// Control: with a valid token the server does read the body, so it waits.
	out, err = rawPost(f.token(authzv1.Role_ROLE_SERVICE, "epro"), 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("authenticated partial request answered without its body: %q, %v", out, err)
	}
}

func TestMaxRequestSize(t *testing.T) {
	f := newFixture(t, platform.WithMaxRequestBytes(1024))
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_SERVICE, "epro")))
	_, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: strings.Repeat("x", 4096)})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("oversized request: %v, want resource_exhausted", err)
	}
}

func TestValidationNamesTheFieldAndRule(t *testing.T) {
	f := newFixture(t)
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	_, err := c.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{SubjectUuid: "not-a-uuid", Reason: "short"})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("code %v, want invalid_argument", err)
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		t.Fatal(err)
	}
	for _, want := range []string{"subject_uuid", "string.uuid", "reason", "string.min_len"} {
		if !strings.Contains(cerr.Message(), want) {
			t.Errorf("message %q lacks %q", cerr.Message(), want)
		}
	}
	var got []string
	for _, d := range cerr.Details() {
		var v validatepb.Violations
		if d.Type != string((&v).ProtoReflect().Descriptor().FullName()) {
			continue
		}
		if err := proto.Unmarshal(d.Value, &v); err != nil {
			t.Fatal(err)
		}
		for _, viol := range v.GetViolations() {
			got = append(got, viol.GetField().GetElements()[0].GetFieldName()+"/"+viol.GetRuleId())
		}
	}
	if strings.Join(got, ",") != "subject_uuid/string.uuid,reason/string.min_len,reason/string.pattern" {
		t.Fatalf("violations detail = %v", got)
	}
}

func TestPanicBecomesInternalWithoutLeaking(t *testing.T) {
	f := newFixture(t)
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	_, err := c.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
		SubjectUuid: uuid.NewString(), Reason: "trigger a panic please"})
	if connect.CodeOf(err) != connect.CodeInternal || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("panic: %v, want a bare internal error", err)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "handler panic") || !strings.Contains(logs, "secret internal state") {
		t.Fatalf("panic not logged on the server:\n%s", logs)
	}
	if lines := f.rpcLines(patientv1connect.PatientServiceGetPatientIdentityProcedure); len(lines) != 1 || lines[0]["code"] != "internal" || lines[0]["level"] != "ERROR" {
		t.Fatalf("rpc log lines of the panicking call: %v, want one internal at ERROR", lines)
	}
	// The server survives.
	if _, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()}); err != nil {
		t.Fatalf("after panic: %v", err)
	}
}

func TestLogLinePerCallWithoutPayload(t *testing.T) {
	f := newFixture(t)
	subject := uuid.NewString()
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_PATIENT, subject)))
	if _, err := c.GetProfile(context.Background(), &patientv1.GetProfileRequest{}); err != nil {
		t.Fatal(err)
	}
	admin := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	_, _ = admin.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
		SubjectUuid: uuid.NewString(), Reason: "confidential reason text"})
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if entry["procedure"] == patientv1connect.PatientServiceGetProfileProcedure {
			found = true
			if entry["code"] != "ok" || entry["subject_uuid"] != subject || entry["role"] != "PATIENT" || entry["duration_ms"] == nil {
				t.Errorf("log entry %v", entry)
			}
		}
	}
	if !found {
		t.Fatalf("no log line for GetProfile:\n%s", f.logs.String())
	}
	if strings.Contains(f.logs.String(), "confidential reason text") {
		t.Fatal("request content reached the log")
	}
}

func TestCORSPreflightAllowsAuthorization(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest(http.MethodOptions, f.url+patientv1connect.PatientServiceGetProfileProcedure, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	// Browsers send the names lower-cased and sorted (Fetch standard).
	req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Fatalf("allow-origin %q", got)
	}
	if got := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "authorization") {
		t.Fatalf("allow-headers %q lacks authorization", got)
	}
	req.Header.Set("Origin", "https://evil.example")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("unknown origin allowed: %q", got)
	}
}

func TestGracefulShutdownDrainsInFlightCalls(t *testing.T) {
	f := newFixture(t)
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	result := make(chan error, 1)
	go func() {
		_, err := c.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
			SubjectUuid: uuid.NewString(), Reason: "block until released"})
		result <- err
	}()
	<-f.entered
	f.cancel() // SIGTERM
	// The server stops accepting new connections while the call is in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", f.addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-f.done:
		t.Fatalf("server stopped before the in-flight call finished: %v", err)
	default:
	}
	close(f.release)
	if err := <-result; err != nil {
		t.Fatalf("in-flight call failed during shutdown: %v", err)
	}
	if err := <-f.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	f.done <- nil // for the cleanup
}

func TestInProcessCallBeforeHandler(t *testing.T) {
	key, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, issuer)
	srv := platform.NewServer("test",
		platform.WithLogger(slog.New(slog.DiscardHandler)),
		platform.WithVerifier(auth.NewVerifier(auth.StaticKeys{signer.PublicKey()}, issuer)))
	patientv1connect.RegisterPatientServiceHandler(srv.RPC(), patients{})
	registerUnruled(t, srv.RPC())
	// Handler, Serve and ListenAndServe are never called: a seed runs first.
	tok, _, err := signer.Sign(auth.Caller{Subject: "seed", Role: authzv1.Role_ROLE_SERVICE}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := patientv1connect.NewPatientServiceClient(connect.NewClient(connectinprocess.New(srv.RPC()), withToken(tok)))
	subject := uuid.NewString()
	res, err := c.GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: subject})
	if err != nil || res.GetSubjectUuid() != subject {
		t.Fatalf("in-process call before Handler: %v %v", res, err)
	}
	// The chain still runs: no token is refused, a patient is refused, a method
	// without a rule is denied.
	_, err = patientv1connect.NewPatientServiceClient(connect.NewClient(connectinprocess.New(srv.RPC()))).
		GetSubjectStatus(context.Background(), &patientv1.GetSubjectStatusRequest{SubjectUuid: subject})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("in-process call without a token: %v, want unauthenticated", err)
	}
	if rule := srv.Policy().Rule(patientv1connect.PatientServiceGetSubjectStatusProcedure); rule == nil || rule.GetPublic() {
		t.Fatalf("Policy before Handler: rule %v", rule)
	}
	if got := srv.Policy().Unruled(); len(got) != 1 || got[0] != unruledProcedure {
		t.Fatalf("Policy().Unruled() = %v, want [%s]", got, unruledProcedure)
	}
	// Health is mounted from the start too.
	var hc healthv1.HealthCheckResponse
	if err := connect.NewClient(connectinprocess.New(srv.RPC())).CallUnary(context.Background(), connect.Spec{
		Procedure: "/grpc.health.v1.Health/Check", Schema: healthv1.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check"),
	}, &healthv1.HealthCheckRequest{}, &hc); err != nil || hc.GetStatus() != healthv1.HealthCheckResponse_SERVING {
		t.Fatalf("in-process health check: %v %v", &hc, err)
	}
}

// rpcLines returns the "rpc" log lines of a procedure, in order.
func (f *fixture) rpcLines(procedure string) []map[string]any {
	f.t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			f.t.Fatalf("log line is not JSON: %s", line)
		}
		if entry["msg"] == "rpc" && entry["procedure"] == procedure {
			lines = append(lines, entry)
		}
	}
	return lines
}

func TestLogShowsTheCodeTheClientGotAndTheCause(t *testing.T) {
	cases := []struct {
		reason  string
		code    connect.Code // what the client receives, and the log line says
		level   string
		cause   string // must be in the log line, never in what the client sees
		message string // the client's whole message
	}{
		{"fail with a plain error", connect.CodeUnknown, "ERROR", "10.0.0.5:5432: connection refused", ""},
		{"fail with a cause", connect.CodeInternal, "ERROR", `relation "vault" does not exist`, "could not load the identity"},
		{"fail with a remote verdict", connect.CodeInternal, "ERROR", "no such trial", ""},
		{"fail with the context", connect.CodeDeadlineExceeded, "WARN", "query: context deadline exceeded", ""},
		{"refuse as not found", connect.CodeNotFound, "INFO", "", "no such subject"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			f := newFixture(t)
			for name, c := range map[string]*connect.Client{
				"connect": f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")),
				"grpc":    f.grpcClient(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")),
			} {
				_, err := patientv1connect.NewPatientServiceClient(c).GetPatientIdentity(context.Background(),
					&patientv1.GetPatientIdentityRequest{SubjectUuid: uuid.NewString(), Reason: tc.reason})
				var cerr *connect.Error
				if !errors.As(err, &cerr) || cerr.Code() != tc.code || cerr.Message() != tc.message {
					t.Fatalf("%s client got %v, want %s %q", name, err, tc.code, tc.message)
				}
				if tc.cause != "" && strings.Contains(err.Error(), tc.cause) {
					t.Fatalf("%s client sees the cause: %v", name, err)
				}
			}
			lines := f.rpcLines(patientv1connect.PatientServiceGetPatientIdentityProcedure)
			if len(lines) != 2 {
				t.Fatalf("%d rpc log lines, want 2:\n%s", len(lines), f.logs.String())
			}
			for _, line := range lines {
				if line["code"] != tc.code.String() || line["level"] != tc.level {
					t.Errorf("log line code=%v level=%v, want %s at %s: %v", line["code"], line["level"], tc.code, tc.level, line)
				}
				if errText, _ := line["error"].(string); !strings.Contains(errText, tc.cause) {
					t.Errorf("log line error %q lacks the cause %q", errText, tc.cause)
				}
			}
		})
	}
}

// stopped waits for Serve to return after f.cancel and returns its error.
func (f *fixture) stopped(within time.Duration) error {
	f.t.Helper()
	select {
	case err := <-f.done:
		f.done <- nil // for the cleanup
		return err
	case <-time.After(within):
		f.t.Fatalf("Serve did not return within %s of shutdown", within)
		return nil
	}
}

func TestShutdownDrainsThenEndsStreams(t *testing.T) {
	// The shutdown timeout is far longer than the test waits: an open stream must
	// not hold the stop until it passes.
	f := newFixture(t, platform.WithDrainDelay(3*time.Second), platform.WithShutdownTimeout(time.Minute))
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watch, err := healthv1.NewHealthClient(f.grpcConn()).Watch(watchCtx, &healthv1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := make(chan any, 4)
	go func() {
		for {
			res, err := watch.Recv()
			if err != nil {
				recv <- err
				return
			}
			recv <- res.GetStatus()
		}
	}()
	next := func() any {
		t.Helper()
		select {
		case v := <-recv:
			return v
		case <-time.After(20 * time.Second):
			t.Fatal("health watch: nothing within 20s")
			return nil
		}
	}
	if got := next(); got != healthv1.HealthCheckResponse_SERVING {
		t.Fatalf("watch first sent %v, want SERVING", got)
	}
	f.cancel() // SIGTERM
	if got := next(); got != healthv1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch sent %v at shutdown, want NOT_SERVING", got)
	}
	// During the drain delay the port still answers, so a probe sees NOT_SERVING.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, f.url+"/grpc.health.v1.Health/Check?encoding=json&message=%7B%7D", nil)
	res, err := probe.Do(req)
	if err != nil {
		t.Fatalf("probe during the drain delay: %v", err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(out), `"NOT_SERVING"`) {
		t.Fatalf("probe during the drain delay: %s %s, want NOT_SERVING", res.Status, out)
	}
	// Then the stream is ended (unavailable: try another replica) and Serve returns.
	if got, ok := next().(error); !ok || status.Code(got) != codes.Unavailable {
		t.Fatalf("watch ended with %v, want unavailable", got)
	}
	if err := f.stopped(20 * time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestShutdownTimeoutCancelsAndCloses(t *testing.T) {
	f := newFixture(t, platform.WithShutdownTimeout(200*time.Millisecond))
	c := patientv1connect.NewPatientServiceClient(f.client(f.token(authzv1.Role_ROLE_ADMIN, "admin-1")))
	result := make(chan error, 1)
	go func() {
		_, err := c.GetPatientIdentity(context.Background(), &patientv1.GetPatientIdentityRequest{
			SubjectUuid: uuid.NewString(), Reason: "block until cancelled"})
		result <- err
	}()
	<-f.entered
	f.cancel()
	select {
	case <-f.cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the call's context was not cancelled when the shutdown timeout passed")
	}
	if err := f.stopped(20 * time.Second); err == nil || !strings.Contains(err.Error(), "shutdown") {
		t.Fatalf("Serve after the shutdown timeout: %v, want an error saying so", err)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("the call cut by the shutdown timeout succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call cut by the shutdown timeout is still running")
	}
}
