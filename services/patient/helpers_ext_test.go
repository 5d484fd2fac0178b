package patient_test

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/gen/go/trialhub/patient/v1/patientv1connect"
	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/platform/platformtest"
)

func clientDep(url string) client.Dependency {
	dep := client.Service("test", url)
	dep.Protocol = client.ProtocolConnect
	dep.MaxAttempts = 1
	dep.Timeout = 30 * time.Second
	dep.Breaker.Disabled = true
	return dep
}

func newClient(dep client.Dependency, tokens auth.TokenSource) *connect.Client {
	opts := []client.Option{client.WithLogger(slog.New(slog.DiscardHandler))}
	if tokens != nil {
		opts = append(opts, client.WithTokens(tokens))
	}
	return client.New(dep, opts...)
}

// smsInbox is the platform's fake vendor (the same program the dev stack and the
// notification service use), read for the SMS sent to one number.
type smsInbox struct {
	*fakevendor.Vendor
	URL string
}

func newSMSInbox(t testing.TB) *smsInbox {
	v, url := fakevendor.Start(t)
	return &smsInbox{Vendor: v, URL: url}
}

func (in *smsInbox) to(number string) []fakevendor.Message {
	var out []fakevendor.Message
	for _, m := range in.Messages(fakevendor.SMS) {
		if m.To == number {
			out = append(out, m)
		}
	}
	return out
}

// testLogger sends the service's log lines to the test's log (shown on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func adminCaller() auth.Caller { return platformtest.Admin() }

func newAuthClient(c *connect.Client) patientv1connect.AuthServiceClient {
	return patientv1connect.NewAuthServiceClient(c)
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
