package platform

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
)

// Shedding configures the load shedder every server runs in front of the RPC chain,
// before authentication decodes a token: an overloaded process answers the excess
// with resource_exhausted at once (HTTP 429 to Connect, gRPC status 8), so the
// requests it admits keep their latency instead of all of them queueing into
// timeouts. Zero fields take the defaults documented on each.
//
// Two bounds apply to unary calls. MaxInFlight is a hard cap. Below it an adaptive
// limit, in the spirit of Netflix's concurrency-limits (gradient), follows latency:
// every Window it compares the window's mean latency with the best latency seen
// recently; when calls take more than Tolerance times as long, concurrency is what
// makes them slow, and the limit shrinks in proportion (never below MinLimit); while
// calls stay fast and the limit is nearly used, it grows by its square root. Streams
// count toward MaxInFlight only (a long export says nothing about capacity), and
// health checks are never shed (a probe must see a busy process as alive).
type Shedding struct {
	// Disabled turns the shedder off.
	Disabled bool
	// MaxInFlight caps unary calls and streams in flight in the process. Default 1024.
	MaxInFlight int
	// MinLimit is the least the adaptive limit shrinks to: this many concurrent
	// unary calls are always admitted. Default 64.
	MinLimit int
	// InitialLimit is the adaptive limit at start. Default 256.
	InitialLimit int
	// Tolerance is how many times the recent best latency a window's mean may reach
	// before the limit shrinks. Default 2.
	Tolerance float64
	// Window is how often the limit adapts. Default 250 ms.
	Window time.Duration
}

func (s Shedding) withDefaults() Shedding {
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 1024
	}
	if s.MinLimit <= 0 {
		s.MinLimit = 64
	}
	if s.InitialLimit <= 0 {
		s.InitialLimit = 256
	}
	s.MinLimit = min(s.MinLimit, s.MaxInFlight)
	s.InitialLimit = min(max(s.InitialLimit, s.MinLimit), s.MaxInFlight)
	if s.Tolerance <= 1 {
		s.Tolerance = 2
	}
	if s.Window <= 0 {
		s.Window = 250 * time.Millisecond
	}
	return s
}

// WithShedding configures the load shedder. Default: on, with Shedding's defaults.
func WithShedding(s Shedding) Option { return func(o *options) { o.shedding = s } }

// ShedStats is what the shedder has done so far, for metrics and tests.
type ShedStats struct {
	// Limit is the adaptive limit now.
	Limit int
	// InFlight is the unary calls and streams being served now.
	InFlight int
	// Admitted and Shed count requests since start.
	Admitted, Shed int64
}

// shedder admits or refuses requests; see Shedding.
type shedder struct {
	cfg      Shedding
	streamed func(procedure string) bool
	errors   *connecthttp.ErrorWriter
	now      func() time.Time

	inFlight      atomic.Int64 // unary calls and streams
	unaryInFlight atomic.Int64
	admitted      atomic.Int64
	shed          atomic.Int64

	mu          sync.Mutex
	limit       float64
	windowStart time.Time
	windowSum   time.Duration
	windowN     int
	windowPeak  int64
	best        time.Duration // best window mean seen recently; drifts up slowly
}

func newShedder(cfg Shedding, streamed func(string) bool) *shedder {
	cfg = cfg.withDefaults()
	return &shedder{
		cfg:      cfg,
		streamed: streamed,
		errors:   connecthttp.NewErrorWriter(),
		now:      time.Now,
		limit:    float64(cfg.InitialLimit),
	}
}

func (s *shedder) stats() ShedStats {
	s.mu.Lock()
	limit := int(s.limit)
	s.mu.Unlock()
	return ShedStats{Limit: limit, InFlight: int(s.inFlight.Load()), Admitted: s.admitted.Load(), Shed: s.shed.Load()}
}

func (s *shedder) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.errors.IsSupported(r) || strings.HasPrefix(r.URL.Path, "/grpc.health.v1.Health/") {
			next.ServeHTTP(w, r) // plain routes (the web app, JWKS) and probes
			return
		}
		stream := s.streamed(r.URL.Path)
		if n := s.inFlight.Add(1); n > int64(s.cfg.MaxInFlight) || (!stream && !s.admitUnary()) {
			s.inFlight.Add(-1)
			s.shed.Add(1)
			w.Header().Set("Retry-After", "1")
			_ = s.errors.Write(w, r, connect.NewError(connect.CodeResourceExhausted, "server overloaded: retry later"))
			return
		}
		s.admitted.Add(1)
		defer s.inFlight.Add(-1)
		if stream {
			next.ServeHTTP(w, r)
			return
		}
		start := s.now()
		defer func() { s.observe(s.now().Sub(start)); s.unaryInFlight.Add(-1) }()
		next.ServeHTTP(w, r)
	})
}

// admitUnary takes a unary slot under the adaptive limit.
func (s *shedder) admitUnary() bool {
	n := s.unaryInFlight.Add(1)
	s.mu.Lock()
	limit := int64(s.limit)
	if n > s.windowPeak {
		s.windowPeak = n
	}
	s.mu.Unlock()
	if n > limit {
		s.unaryInFlight.Add(-1)
		return false
	}
	return true
}

// observe records one unary call's latency and adapts the limit once a window.
func (s *shedder) observe(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.windowStart.IsZero() {
		s.windowStart = now
	}
	s.windowSum += d
	s.windowN++
	if now.Sub(s.windowStart) < s.cfg.Window || s.windowN < 10 {
		return
	}
	mean := s.windowSum / time.Duration(s.windowN)
	switch {
	case s.best == 0 || mean < s.best:
		s.best = mean
	default:
		// Let the baseline drift up slowly, so a lasting change of workload (a
		// bigger database) is not taken for overload forever.
		s.best += (mean - s.best) / 64
	}
	ratio := float64(mean) / float64(s.best)
	switch {
	case ratio > s.cfg.Tolerance:
		s.limit = math.Max(float64(s.cfg.MinLimit), s.limit*s.cfg.Tolerance/ratio)
	case float64(s.windowPeak) >= 0.8*s.limit:
		s.limit = math.Min(float64(s.cfg.MaxInFlight), s.limit+math.Sqrt(s.limit))
	}
	s.windowStart, s.windowSum, s.windowN, s.windowPeak = now, 0, 0, s.unaryInFlight.Load()
}
