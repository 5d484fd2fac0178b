package notification

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trialhub/trialhub/services/notification/ent"
	"github.com/trialhub/trialhub/services/notification/ent/notification"
	"github.com/trialhub/trialhub/services/notification/ent/safetyalert"
)

// metrics are the service's business metrics:
//
//	notification_notifications{state}                                 notifications by status
//	notification_safety_alerts_unacknowledged                         open safety alerts
//	notification_safety_alert_oldest_unacknowledged_age_seconds       age of the oldest open one
//	notification_vendor_requests_total{outcome}                       pushes by how the vendor judged them
//
// The gauges are read from the database on scrape, at most once per 5 s.
type metrics struct {
	requests *prometheus.CounterVec
}

var (
	descNotifications = prometheus.NewDesc("notification_notifications", "Notifications by delivery status.", []string{"state"}, nil)
	descUnacked       = prometheus.NewDesc("notification_safety_alerts_unacknowledged", "Safety alerts nobody has acknowledged yet.", nil, nil)
	descOldest        = prometheus.NewDesc("notification_safety_alert_oldest_unacknowledged_age_seconds", "Age of the oldest unacknowledged safety alert (0 when there is none).", nil, nil)
)

var allStatuses = []string{stQueued, stSending, stDelivered, stFailed, stExpired, stCancelled, stRetrying, stDead}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "notification_vendor_requests_total",
		Help: "Pushes sent to (or held back from) the push vendor, by outcome: accepted, transient, token_invalid, rejected, breaker_open, bulkhead_full.",
	}, []string{"outcome"})}
	for _, o := range []Outcome{OutcomeOK, Transient, TokenInvalid, Rejected, OutcomeOpen, OutcomeBulked} {
		m.requests.WithLabelValues(string(o))
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	if err := reg.Register(&stateCollector{s: s}); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) vendor(o Outcome) { m.requests.WithLabelValues(string(o)).Inc() }

// stateCollector reads the gauges from the database, cached for 5 s.
type stateCollector struct {
	s    *Service
	mu   sync.Mutex
	last time.Time
	memo []prometheus.Metric
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNotifications
	ch <- descUnacked
	ch <- descOldest
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.last) > 5*time.Second {
		if ms, err := c.read(); err == nil {
			c.memo, c.last = ms, time.Now()
		}
	}
	for _, m := range c.memo {
		ch <- m
	}
}

func (c *stateCollector) read() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var counts []struct {
		Status string `json:"status"`
		Count  int    `json:"count"`
	}
	if err := c.s.ent.Notification.Query().GroupBy(notification.FieldStatus).Aggregate(entCount()).Scan(ctx, &counts); err != nil {
		return nil, err
	}
	by := map[string]int{}
	for _, r := range counts {
		by[r.Status] = r.Count
	}
	var out []prometheus.Metric
	for _, st := range allStatuses {
		out = append(out, prometheus.MustNewConstMetric(descNotifications, prometheus.GaugeValue, float64(by[st]), st))
	}
	open := c.s.ent.SafetyAlert.Query().Where(safetyalert.Status(alertOpen))
	n, err := open.Clone().Count(ctx)
	if err != nil {
		return nil, err
	}
	age := 0.0
	if n > 0 {
		oldest, err := open.Clone().Order(safetyalert.ByRaisedAt()).First(ctx)
		if err != nil {
			return nil, err
		}
		age = time.Since(oldest.RaisedAt).Seconds()
	}
	out = append(out, prometheus.MustNewConstMetric(descUnacked, prometheus.GaugeValue, float64(n)),
		prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age))
	return out, nil
}

func entCount() ent.AggregateFunc { return ent.Count() }
