package client

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRPCAnswer(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = io.WriteString(w, s)
		_ = w.Close()
		return b.String()
	}
	bigDetails := `{"details": [{"type": "x", "value": "` + strings.Repeat("A", 100_000) + `"}], "code": "unavailable"}`
	cases := []struct {
		name   string
		header http.Header
		body   string
		want   bool
	}{
		{"connect error", http.Header{"Content-Type": {"application/json"}}, `{"code":"unavailable","message":"m"}`, true},
		{"connect error with charset", http.Header{"Content-Type": {"application/json; charset=utf-8"}}, `{"code":"resource_exhausted"}`, true},
		{"code after large details", http.Header{"Content-Type": {"application/json"}}, bigDetails, true},
		{"gzipped connect error", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, gz(`{"code":"deadline_exceeded"}`), true},
		{"grpc-status header", http.Header{"Content-Type": {"application/grpc-web+proto"}, "Grpc-Status": {"14"}}, "", true},
		{"plain text", http.Header{"Content-Type": {"text/plain"}}, "Service Unavailable", false},
		{"html", http.Header{"Content-Type": {"text/html"}}, "<html>503</html>", false},
		{"no content type", http.Header{}, `{"code":"unavailable"}`, false},
		{"json without code", http.Header{"Content-Type": {"application/json"}}, `{"error":"down"}`, false},
		{"json numeric code", http.Header{"Content-Type": {"application/json"}}, `{"code":503}`, false},
		{"json unknown code", http.Header{"Content-Type": {"application/json"}}, `{"code":"bad_gateway"}`, false},
		{"nested code only", http.Header{"Content-Type": {"application/json"}}, `{"error":{"code":"unavailable"}}`, false},
		{"json array", http.Header{"Content-Type": {"application/json"}}, `["unavailable"]`, false},
		{"broken json", http.Header{"Content-Type": {"application/json"}}, `{"code":`, false},
		{"unknown encoding", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"br"}}, "\x00\x01", false},
	}
	for _, c := range cases {
		res := &http.Response{StatusCode: 503, Header: c.header, Body: io.NopCloser(strings.NewReader(c.body))}
		if got := rpcAnswer(res); got != c.want {
			t.Errorf("%s: rpcAnswer %v, want %v", c.name, got, c.want)
		}
		// Whatever was read to decide is put back.
		if rest, err := io.ReadAll(res.Body); err != nil || string(rest) != c.body {
			t.Errorf("%s: body after rpcAnswer is %d bytes (%v), want the %d sent", c.name, len(rest), err, len(c.body))
		}
	}
}
