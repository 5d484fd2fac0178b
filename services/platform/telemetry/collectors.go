package telemetry

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Shedding is what a server's load shedder has done so far. It has the fields of
// platform.ShedStats, so the lead's wiring converts one to the other:
//
//	tel.RegisterShedding(func() telemetry.Shedding { return telemetry.Shedding(srv.Shedding()) })
type Shedding struct {
	// Limit is the adaptive limit now.
	Limit int
	// InFlight is the unary calls and streams being served now.
	InFlight int
	// Admitted and Shed count requests since start.
	Admitted, Shed int64
}

// RegisterShedding reports stats on every scrape as
// trialhub_shed_requests_total and trialhub_admitted_requests_total (counters),
// trialhub_shed_limit and trialhub_requests_in_flight (gauges). Call it once per
// registry.
func (t *Telemetry) RegisterShedding(stats func() Shedding) error {
	return register(t.reg, "shedding", &funcCollector{
		descs: []*prometheus.Desc{descShed, descAdmitted, descShedLimit, descInFlight},
		collect: func(ch chan<- prometheus.Metric) {
			s := stats()
			ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(s.Shed))
			ch <- prometheus.MustNewConstMetric(descAdmitted, prometheus.CounterValue, float64(s.Admitted))
			ch <- prometheus.MustNewConstMetric(descShedLimit, prometheus.GaugeValue, float64(s.Limit))
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight))
		},
	})
}

var (
	descShed      = prometheus.NewDesc("trialhub_shed_requests_total", "Requests the load shedder refused with resource_exhausted.", nil, nil)
	descAdmitted  = prometheus.NewDesc("trialhub_admitted_requests_total", "Requests the load shedder admitted.", nil, nil)
	descShedLimit = prometheus.NewDesc("trialhub_shed_limit", "The load shedder's adaptive limit on concurrent unary calls.", nil, nil)
	descInFlight  = prometheus.NewDesc("trialhub_requests_in_flight", "Unary calls and streams being served.", nil, nil)
	descJobs      = prometheus.NewDesc("trialhub_river_jobs", "River jobs by kind and state (completed and cancelled ones are not counted; discarded are dead letters).", []string{"kind", "state"}, nil)
	descJobAge    = prometheus.NewDesc("trialhub_river_oldest_job_age_seconds", "Age (since it was inserted) of the oldest River job by kind and state.", []string{"kind", "state"}, nil)
	descAudit     = prometheus.NewDesc("trialhub_audit_events_total", "Audit events written (the audit trail's last sequence number).", nil, nil)
)

// QueryOption configures the collectors that query the database.
type QueryOption func(*queryConfig)

type queryConfig struct {
	every, timeout time.Duration
}

// WithQueryEvery runs the collector's query at most once per d, however often
// Prometheus scrapes; scrapes in between get the last answer. Default 5 s.
func WithQueryEvery(d time.Duration) QueryOption { return func(c *queryConfig) { c.every = d } }

// WithQueryTimeout bounds each query. Default 2 s.
func WithQueryTimeout(d time.Duration) QueryOption { return func(c *queryConfig) { c.timeout = d } }

func newQueryConfig(opts []QueryOption) queryConfig {
	c := queryConfig{every: 5 * time.Second, timeout: 2 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// riverStates are the river_job states RegisterRiverJobs counts: every state a
// job waits or works in, and discarded (dead letters, kept until River's cleaner
// deletes them, 7 days by default). Completed and cancelled jobs, most of the
// table, are not read.
const riverStates = "'available','pending','retryable','running','scheduled','discarded'"

// RegisterRiverJobs reports the river_job table of d on scrape:
// trialhub_river_jobs{kind, state} and trialhub_river_oldest_job_age_seconds{kind,
// state} for the states a job waits or works in and for discarded ones (dead
// letters), and trialhub_collector_up{collector="river_jobs"}. One GROUP BY query
// on the read pool, at most once per WithQueryEvery; its rows are bounded by
// kinds x states and it reads no completed jobs.
func (t *Telemetry) RegisterRiverJobs(d *db.DB, opts ...QueryOption) error {
	age := "EXTRACT(EPOCH FROM (now() - min(created_at)))"
	if d.Dialect() == dialect.SQLite {
		age = "(julianday('now') - julianday(min(created_at))) * 86400.0"
	}
	query := "SELECT kind, state, count(*), " + age + " FROM river_job WHERE state IN (" + riverStates + ") GROUP BY kind, state"
	return register(t.registerer(), "river_jobs", newQueryCollector("river_jobs", d.ReadSQL(), newQueryConfig(opts),
		[]*prometheus.Desc{descJobs, descJobAge},
		func(ctx context.Context, q *sql.DB) ([]prometheus.Metric, error) {
			rows, err := q.QueryContext(ctx, query)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []prometheus.Metric
			for rows.Next() {
				var kind, state string
				var n int64
				var age sql.NullFloat64
				if err := rows.Scan(&kind, &state, &n, &age); err != nil {
					return nil, err
				}
				out = append(out,
					prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), kind, state),
					prometheus.MustNewConstMetric(descJobAge, prometheus.GaugeValue, max(age.Float64, 0), kind, state))
			}
			return out, rows.Err()
		}))
}

// RegisterAuditEvents reports trialhub_audit_events_total, the audit trail's last
// sequence number in d (every event has the next one, so it counts the events
// written, by any process), and trialhub_collector_up{collector="audit_events"}.
// One primary-key lookup, at most once per WithQueryEvery.
func (t *Telemetry) RegisterAuditEvents(d *db.DB, opts ...QueryOption) error {
	return register(t.registerer(), "audit_events", newQueryCollector("audit_events", d.ReadSQL(), newQueryConfig(opts),
		[]*prometheus.Desc{descAudit},
		func(ctx context.Context, q *sql.DB) ([]prometheus.Metric, error) {
			var n sql.NullInt64
			if err := q.QueryRowContext(ctx, "SELECT max(sequence) FROM audit_events").Scan(&n); err != nil {
				return nil, err
			}
			return []prometheus.Metric{prometheus.MustNewConstMetric(descAudit, prometheus.CounterValue, float64(n.Int64))}, nil
		}))
}

func register(reg prometheus.Registerer, what string, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("telemetry: register %s collector: %w", what, err)
	}
	return nil
}

// funcCollector collects by calling a function on every scrape.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// queryCollector runs a query at most once per interval and serves its last
// answer to the scrapes in between.
type queryCollector struct {
	name  string
	db    *sql.DB
	cfg   queryConfig
	descs []*prometheus.Desc
	up    *prometheus.Desc
	query func(context.Context, *sql.DB) ([]prometheus.Metric, error)

	mu      sync.Mutex
	last    time.Time
	metrics []prometheus.Metric
	ok      bool
}

func newQueryCollector(name string, d *sql.DB, cfg queryConfig, descs []*prometheus.Desc,
	query func(context.Context, *sql.DB) ([]prometheus.Metric, error)) *queryCollector {
	// A const label, not a variable one: each collector has a Desc of its own, as
	// the registry requires.
	up := prometheus.NewDesc("trialhub_collector_up", "1 when the collector's last query succeeded, 0 when it failed.",
		nil, prometheus.Labels{"collector": name})
	return &queryCollector{name: name, db: d, cfg: cfg, descs: append(descs, up), up: up, query: query}
}

func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock() // one query at a time; concurrent scrapes wait for it
	defer c.mu.Unlock()
	if c.last.IsZero() || time.Since(c.last) >= c.cfg.every {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
		metrics, err := c.query(ctx, c.db)
		cancel()
		c.last, c.ok = time.Now(), err == nil
		if err == nil {
			c.metrics = metrics
		} else {
			c.metrics = nil // a failed query reports nothing rather than stale numbers
		}
	}
	for _, m := range c.metrics {
		ch <- m
	}
	up := 0.0
	if c.ok {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}
