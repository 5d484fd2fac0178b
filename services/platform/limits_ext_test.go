package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/google/uuid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	authzv1 "github.com/trialhub/trialhub/gen/go/trialhub/authz/v1"
	patientv1 "github.com/trialhub/trialhub/gen/go/trialhub/patient/v1"
	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform"
)

func TestTrickledBodyIsCutOff(t *testing.T) {
	f := newFixture(t, platform.WithUnaryTimeouts(300*time.Millisecond, time.Second))
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST " + patientv1connect.PatientServiceGetSubjectStatusProcedure + " HTTP/1.1\r\n" +
		"Host: " + f.addr + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n" +
		"Authorization: Bearer " + f.token(authzv1.Role_ROLE_SERVICE, "epro") + "\r\n\r\n{"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	// One byte every 50ms would take 50s; the server must not wait for it.
	answered := make(chan string, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		answered <- line
	}()
	for i := 0; ; i++ {
		select {
		case line := <-answered:
			if line == "" {
				t.Fatal("no answer to a trickled body within 20s")
			}
			// Connect maps deadline_exceeded to HTTP 504.
			if !strings.HasPrefix(line, "HTTP/1.1 504") {
				t.Fatalf("trickled body answered %q, want HTTP/1.1 504 (deadline_exceeded)", line)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if i == 400 {
			t.Fatal("a trickled body held the call for 20s")
		}
		_, _ = io.WriteString(conn, " ")
	}
}

// deadlines records the deadline each call's handler sees, per procedure.
type deadlines struct {
	mu  sync.Mutex
	got map[string][]time.Duration // remaining time at the handler; -1 for none
}

func (d *deadlines) interceptor(next connect.ServerFunc) connect.ServerFunc {
	return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
		remaining := time.Duration(-1)
		if deadline, ok := ctx.Deadline(); ok {
			remaining = time.Until(deadline)
		}
		d.mu.Lock()
		d.got[spec.Procedure] = append(d.got[spec.Procedure], remaining)
		d.mu.Unlock()
		return next(ctx, spec, stream)
	}
}

func (d *deadlines) last(procedure string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	got := d.got[procedure]
	if len(got) == 0 {
		return -2
	}
	return got[len(got)-1]
}

func TestUnaryDeadlines(t *testing.T) {
	rec := &deadlines{got: map[string][]time.Duration{}}
	f := newFixture(t, platform.WithUnaryTimeouts(time.Hour, 2*time.Hour), platform.WithInterceptors(rec.interceptor))
	const procedure = patientv1connect.PatientServiceGetSubjectStatusProcedure
	token := f.token(authzv1.Role_ROLE_SERVICE, "epro")
	for name, c := range map[string]*connect.Client{"connect": f.client(token), "grpc": f.grpcClient(token)} {
		client := patientv1connect.NewPatientServiceClient(c)
		call := func(timeout time.Duration) time.Duration {
			t.Helper()
			ctx := context.Background()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if _, err := client.GetSubjectStatus(ctx, &patientv1.GetSubjectStatusRequest{SubjectUuid: uuid.NewString()}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return rec.last(procedure)
		}
		if got := call(0); got <= 50*time.Minute || got > time.Hour {
			t.Errorf("%s: no deadline from the caller: handler has %v left, want the 1h default", name, got)
		}
		if got := call(time.Minute); got <= 0 || got > time.Minute {
			t.Errorf("%s: caller's 1m deadline: handler has %v left, want at most 1m", name, got)
		}
		if got := call(5 * time.Hour); got <= 110*time.Minute || got > 2*time.Hour {
			t.Errorf("%s: caller's 5h deadline: handler has %v left, want it cut to the 2h maximum", name, got)
		}
	}
}

func TestStreamsAreNotCutByTheUnaryDeadline(t *testing.T) {
	rec := &deadlines{got: map[string][]time.Duration{}}
	f := newFixture(t, platform.WithUnaryTimeouts(50*time.Millisecond, 50*time.Millisecond),
		platform.WithBodyReadTimeout(50*time.Millisecond), platform.WithInterceptors(rec.interceptor))
	watchSpec := connect.Spec{
		StreamType: connect.StreamTypeServer,
		Procedure:  "/grpc.health.v1.Health/Watch",
		Schema:     healthv1.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Watch"),
	}
	for name, c := range map[string]*connect.Client{
		"grpc over HTTP/2":      f.grpcClient(""),
		"connect over HTTP/1.1": f.client(""),
	} {
		t.Run(name, func(t *testing.T) {
			service := "svc-" + uuid.NewString()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watch, err := c.CallServerStream(ctx, watchSpec, &healthv1.HealthCheckRequest{Service: service})
			if err != nil {
				t.Fatal(err)
			}
			var res healthv1.HealthCheckResponse
			if err := watch.Receive(&res); err != nil || res.GetStatus() != healthv1.HealthCheckResponse_SERVICE_UNKNOWN {
				t.Fatalf("first: %v %v", &res, err)
			}
			if got := rec.last(watchSpec.Procedure); got != -1 {
				t.Fatalf("stream handler has a deadline (%v left), want none", got)
			}
			time.Sleep(300 * time.Millisecond) // six times the unary deadline and the body read timeout
			f.srv.Health().SetServing(service, true)
			if err := watch.Receive(&res); err != nil || res.GetStatus() != healthv1.HealthCheckResponse_SERVING {
				t.Fatalf("after the unary deadline: %v %v, want the stream still open", &res, err)
			}
		})
	}
}

func TestHTTPLimits(t *testing.T) {
	f := newFixture(t, platform.WithMaxConcurrentStreams(7), platform.WithMaxHeaderBytes(8<<10))
	t.Run("http/2 settings", func(t *testing.T) {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		frame, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		settings, ok := frame.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame %v, want SETTINGS", frame)
		}
		if v, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || v != 7 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (%v), want 7", v, ok)
		}
		// net/http adds 32 bytes per header field of overhead to the configured
		// size; what matters is that it is near 8 KiB, not the 1 MiB default.
		if v, ok := settings.Value(http2.SettingMaxHeaderListSize); !ok || v < 8<<10 || v > 16<<10 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d (%v), want about 8 KiB", v, ok)
		}
	})
	t.Run("http/1.1 header size", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.url+"/grpc.health.v1.Health/Check?encoding=json&message=%7B%7D", nil)
		req.Header.Set("X-Padding", strings.Repeat("x", 16<<10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("16 KiB header: %s, want 431", res.Status)
		}
	})
}

func TestPlainRouteBodyReadTimeout(t *testing.T) {
	f := newFixture(t, platform.WithBodyReadTimeout(200*time.Millisecond))
	read := make(chan error, 1)
	f.srv.Handle("POST /upload", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}))
	// Routes added with Handle after Serve started are live: the mux is shared.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("a 3-byte body of 100 announced was read without error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a plain route waited 20s for a body")
	}
}

func TestTrickledGRPCBodyIsCutOff(t *testing.T) {
	f := newFixture(t, platform.WithUnaryTimeouts(300*time.Millisecond, time.Second))
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", f.addr},
		{":path", patientv1connect.PatientServiceGetSubjectStatusProcedure},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"authorization", "Bearer " + f.token(authzv1.Role_ROLE_SERVICE, "epro")},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// A gRPC message announcing 1000 bytes, of which 10 arrive, then nothing.
	if err := fr.WriteData(1, false, append([]byte{0, 0, 0, 3, 232}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no end of the trickled gRPC call: %v", err)
		}
		switch frame := frame.(type) {
		case *http2.RSTStreamFrame:
			t.Logf("stream reset: %v", frame.ErrCode)
			return // the stream was reset: cut off
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(frame.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == "grpc-status" {
					t.Logf("grpc-status %s", hf.Value)
					if hf.Value != "4" { // DEADLINE_EXCEEDED
						t.Fatalf("grpc-status %s, want 4 (deadline exceeded)", hf.Value)
					}
					return
				}
			}
		case *http2.SettingsFrame:
			if !frame.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}
}
