package platform_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trialhub/trialhub/services/platform"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/platformtest"
	"github.com/trialhub/trialhub/services/platform/platformtest/notes"
)

// shedServer serves one unary method, AddNote, with handler, behind the shedder.
func shedServer(t *testing.T, shedding platform.Shedding, handler func(ctx context.Context)) (*platform.Server, func(protocol client.Protocol) *connect.Client, string) {
	t.Helper()
	signer := auth.NewSigner(mustKey(t), "test")
	srv := platform.NewServer("shed",
		platform.WithLogger(slog.New(slog.DiscardHandler)),
		platform.WithVerifier(auth.NewVerifier(signer.Keys(), "test")),
		platform.WithDrainDelay(0),
		platform.WithShedding(shedding))
	srv.RPC().Register(connect.Method{Spec: notes.Spec(notes.AddNoteProcedure), Handler: func(ctx context.Context, _ connect.Spec, stream connect.ServerStream) error {
		if err := stream.Receive(&structpb.Struct{}); err != nil {
			return err
		}
		handler(ctx)
		return stream.Send(&structpb.Struct{})
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	token, _, err := signer.Sign(platformtest.Admin(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	newClient := func(protocol client.Protocol) *connect.Client {
		dep := client.Service("shed", url)
		dep.Protocol, dep.MaxAttempts, dep.Breaker.Disabled, dep.Timeout = protocol, 1, true, 30*time.Second
		return client.New(dep, client.WithTokens(auth.StaticToken(token)))
	}
	return srv, newClient, url
}

func call(ctx context.Context, c *connect.Client) error {
	return c.CallUnary(ctx, notes.Spec(notes.AddNoteProcedure), &structpb.Struct{}, &structpb.Struct{})
}

// Past the in-flight bound the excess is refused at once with resource_exhausted
// (HTTP 429 and Retry-After to Connect, status 8 to gRPC), health still answers, and
// the bound frees as calls finish.
func TestShedderRefusesPastTheBound(t *testing.T) {
	entered, release := make(chan struct{}, 2), make(chan struct{})
	srv, newClient, url := shedServer(t, platform.Shedding{MaxInFlight: 2, MinLimit: 2, InitialLimit: 2},
		func(context.Context) { entered <- struct{}{}; <-release })
	ctx := context.Background()
	grpc, connectc := newClient(client.ProtocolGRPC), newClient(client.ProtocolConnect)

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := call(ctx, grpc); err != nil {
				t.Errorf("admitted call: %v", err)
			}
		})
	}
	<-entered
	<-entered
	for name, c := range map[string]*connect.Client{"gRPC": grpc, "Connect": connectc} {
		if err := call(ctx, c); connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("%s call past the bound: %v, want resource_exhausted", name, err)
		}
	}
	res, err := http.Post(url+notes.AddNoteProcedure, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("curl past the bound: %s, Retry-After %q; want 429 with Retry-After", res.Status, res.Header.Get("Retry-After"))
	}
	health, err := http.Post(url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Errorf("health check while full: %s, want 200 (probes are never shed)", health.Status)
	}
	close(release)
	wg.Wait()
	if err := call(ctx, grpc); err != nil {
		t.Errorf("call after the load passed: %v", err)
	}
	if st := srv.Shedding(); st.Shed != 3 || st.Admitted != 3 {
		t.Errorf("stats = %+v, want 3 shed and 3 admitted", st)
	}
}

// Under load well above capacity the adaptive limit shrinks, the excess is shed,
// and the calls admitted are served much faster than when everything is let in.
// Latency is measured inside the server (handler entry to exit, where queueing
// for capacity shows), and only as the ratio of two p99s in one run.
func TestShedderAdaptsToCapacity(t *testing.T) {
	// A service that can do 4 things at once, 2 ms each: more concurrency only
	// queues.
	capacity := make(chan struct{}, 4)
	type recorder struct {
		mu        sync.Mutex
		latencies []time.Duration
	}
	work := func(r *recorder) func(ctx context.Context) {
		return func(ctx context.Context) {
			start := time.Now()
			select {
			case capacity <- struct{}{}:
			case <-ctx.Done():
				return
			}
			time.Sleep(2 * time.Millisecond)
			<-capacity
			r.mu.Lock()
			r.latencies = append(r.latencies, time.Since(start))
			r.mu.Unlock()
		}
	}
	offer := func(c *connect.Client, r *recorder) (p99 time.Duration, shed int) {
		r.mu.Lock()
		r.latencies = nil
		r.mu.Unlock()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 48 {
			wg.Go(func() {
				for range 40 {
					err := call(context.Background(), c)
					switch {
					case err == nil:
					case connect.CodeOf(err) == connect.CodeResourceExhausted:
						mu.Lock()
						shed++
						mu.Unlock()
						time.Sleep(5 * time.Millisecond) // a client backing off
					default:
						t.Errorf("call: %v", err)
					}
				}
			})
		}
		wg.Wait()
		r.mu.Lock()
		defer r.mu.Unlock()
		slices.Sort(r.latencies)
		if len(r.latencies) == 0 {
			t.Fatal("nothing was admitted")
		}
		return r.latencies[len(r.latencies)*99/100], shed
	}
	onRec, offRec := &recorder{}, &recorder{}
	on, onClient, _ := shedServer(t, platform.Shedding{MinLimit: 4, InitialLimit: 48, Window: 20 * time.Millisecond, Tolerance: 1.5}, work(onRec))
	_, offClient, _ := shedServer(t, platform.Shedding{Disabled: true}, work(offRec))

	offP99, offShed := offer(offClient(client.ProtocolGRPC), offRec)
	offer(onClient(client.ProtocolGRPC), onRec) // the limiter learns
	onP99, onShed := offer(onClient(client.ProtocolGRPC), onRec)
	st := on.Shedding()
	t.Logf("p99 in the server: %v with shedding, %v without (ratio %.1f); shed %d; limit %d", onP99, offP99, float64(offP99)/float64(onP99), onShed, st.Limit)
	if offShed != 0 {
		t.Errorf("the server without shedding refused %d calls", offShed)
	}
	if onShed == 0 || st.Limit >= 48 {
		t.Fatalf("nothing shed (limit %d): the limit did not adapt", st.Limit)
	}
	if onP99*2 > offP99 {
		t.Errorf("admitted p99 %v with shedding is not under half of %v without", onP99, offP99)
	}
}
