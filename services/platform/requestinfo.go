package platform

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect/v2"

	"github.com/trialhub/trialhub/services/platform/request"
)

// Limits of what request.Info keeps of caller-chosen headers.
const (
	maxRequestIDLen  = 64
	maxUserAgentLen  = 256
	maxAppVersionLen = 64
)

// requestInfo fills in request.Info before anything else of the chain runs (see
// package request): the caller's X-Request-Id when it is well-formed (1 to 64 of
// A-Z a-z 0-9 - _ . :), otherwise a new random one, echoed in the X-Request-Id
// response header; the procedure; the client's host (the TCP peer, or the
// X-Forwarded-For address for a trusted proxy, see WithTrustedProxies); User-Agent
// and X-App-Version truncated to 256 and 64 bytes; and the trace id of an
// inbound W3C traceparent header.
func requestInfo(trusted []netip.Prefix) connect.ServerInterceptor {
	return func(next connect.ServerFunc) connect.ServerFunc {
		return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
			info := request.Info{Procedure: spec.Procedure}
			call, ok := connect.CallInfoForServerContext(ctx)
			if ok {
				h := call.RequestHeader()
				info.ID = h.Get("X-Request-Id")
				info.ClientAddr = clientAddr(call.PeerAddr, h.Values("X-Forwarded-For"), trusted)
				info.UserAgent = truncate(h.Get("User-Agent"), maxUserAgentLen)
				info.AppVersion = truncate(h.Get("X-App-Version"), maxAppVersionLen)
				info.TraceID = traceID(h.Get("Traceparent"))
			}
			if !wellFormedID(info.ID) {
				info.ID = rand.Text()
			}
			if ok {
				call.ResponseHeader().Set("X-Request-Id", info.ID)
			}
			return next(request.With(ctx, info), spec, stream)
		}
	}
}

func wellFormedID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// clientAddr is the peer's host, or for a trusted proxy the rightmost forwarded
// address that is not itself a trusted proxy (the leftmost when all are).
func clientAddr(peer string, forwarded []string, trusted []netip.Prefix) string {
	host := peer
	if h, _, err := net.SplitHostPort(peer); err == nil {
		host = h
	}
	if len(trusted) == 0 || len(forwarded) == 0 || !inAny(host, trusted) {
		return host
	}
	var hops []string
	for _, v := range forwarded {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(hops[i])
		if err != nil {
			return host // a malformed chain is not believed
		}
		if !inAny(hops[i], trusted) || i == 0 {
			return addr.Unmap().String()
		}
	}
	return host
}

func inAny(host string, prefixes []netip.Prefix) bool {
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// truncate cuts s to at most n bytes on a character boundary, replacing invalid
// UTF-8.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		// Drop a character cut in half.
		for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
			if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// traceID is the trace id of a W3C traceparent header ("00-<32 hex>-<16 hex>-<2
// hex>"), or "" when it has none or is malformed.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || parts[1] == strings.Repeat("0", 32) {
		return ""
	}
	for _, c := range []byte(parts[1]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return parts[1]
}
