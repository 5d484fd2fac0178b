package client

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"connectrpc.com/connect/v2"
)

// maxErrorPeek bounds how much of a JSON error body is read to find its code.
const maxErrorPeek = 1 << 20

// rpcAnswer reports whether a response is the RPC server's own answer rather than a
// proxy's or a load balancer's. The HTTP layer must not retry such an answer
// whatever its status: the handler ran and said so (the Connect protocol sends
// unavailable as 503, resource_exhausted as 429, deadline_exceeded as 504).
//
//   - gRPC and gRPC-Web carry grpc-status in the headers of a trailers-only answer.
//   - A Connect unary error has Content-Type application/json and a JSON object
//     whose "code" is the name of a Connect code ("unavailable").
//
// A proxy's answer is text/html, plain text, or JSON without such a code. The body
// read to decide is put back, so the caller reads the response unchanged.
func rpcAnswer(res *http.Response) bool {
	if res.Header.Get("Grpc-Status") != "" {
		return true
	}
	media, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || media != "application/json" || res.Body == nil {
		return false
	}
	var peeked bytes.Buffer
	src := io.TeeReader(io.LimitReader(res.Body, maxErrorPeek), &peeked)
	found := false
	switch res.Header.Get("Content-Encoding") {
	case "", "identity":
		found = hasConnectCode(src)
	case "gzip":
		if zr, err := gzip.NewReader(src); err == nil {
			found = hasConnectCode(zr)
		}
	}
	res.Body = replayedBody{Reader: io.MultiReader(&peeked, res.Body), Closer: res.Body}
	return found
}

// replayedBody is a response body with its peeked start put back in front.
type replayedBody struct {
	io.Reader
	io.Closer
}

// hasConnectCode reports whether r holds a JSON object with a top-level "code"
// string naming a Connect code. It reads only as far as it needs to.
func hasConnectCode(r io.Reader) bool {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false
		}
		if key != "code" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return false
			}
			continue
		}
		tok, err := dec.Token()
		name, ok := tok.(string)
		var code connect.Code
		return err == nil && ok && code.UnmarshalText([]byte(name)) == nil
	}
	return false
}
