package jobs

import (
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Defaults of a Queue, chosen from the figures in the package comment.
const (
	// DefaultWorkers is the number of jobs one process works at once on the
	// default queue.
	DefaultWorkers = 10
	// DefaultFetchCooldown is the shortest time between two fetches of a queue.
	DefaultFetchCooldown = 5 * time.Millisecond
	// DefaultFetchPollInterval is how often a queue looks for new jobs when no
	// notification tells it: on PostgreSQL without WithListener, and on SQLite.
	DefaultFetchPollInterval = 50 * time.Millisecond
	// DefaultListenerPollInterval is the poll interval with WithListener, where
	// polling is only the fallback for a lost notification (River's default).
	DefaultListenerPollInterval = time.Second
	// DefaultHardStopWait is how long Stop waits for jobs to return once their
	// contexts are cancelled.
	DefaultHardStopWait = 10 * time.Second
)

// Option configures a Queue.
type Option func(*config)

type config struct {
	queues       map[string]int
	cooldown     time.Duration
	poll         time.Duration
	pollSet      bool
	maxAttempts  int
	rescueAfter  time.Duration
	jobTimeout   time.Duration
	logger       *slog.Logger
	plugins      []rivertype.Plugin
	retryPolicy  river.ClientRetryPolicy
	clock        rivertype.TimeGenerator
	listenDSN    string
	id           string
	hardStopWait time.Duration
	testOnly     bool
}

func newConfig(opts []Option) *config {
	c := &config{
		queues:       map[string]int{river.QueueDefault: DefaultWorkers},
		cooldown:     DefaultFetchCooldown,
		poll:         DefaultFetchPollInterval,
		logger:       slog.Default(),
		hardStopWait: DefaultHardStopWait,
	}
	for _, o := range opts {
		o(c)
	}
	if c.listenDSN != "" && !c.pollSet {
		c.poll = DefaultListenerPollInterval
	}
	return c
}

// WithQueues sets the queues this process works and how many jobs of each it works
// at once (River's QueueConfig.MaxWorkers, 1 to 10,000), replacing the default of
// DefaultWorkers on river.QueueDefault ("default"). Jobs go to a queue through
// river.InsertOpts.Queue or the args' InsertOpts.
func WithQueues(workers map[string]int) Option {
	return func(c *config) { c.queues = workers }
}

// WithFetch sets how soon a committed job is picked up: cooldown is the shortest
// time between two fetches (default DefaultFetchCooldown, 5 ms; River's is 100 ms),
// poll the interval of fetches when nothing signals new jobs (default
// DefaultFetchPollInterval, 50 ms, or DefaultListenerPollInterval, 1 s, with
// WithListener). poll must be at least cooldown. Without a listener a job starts on
// average half a poll after commit; shorter polls mean lower latency and more idle
// queries (one per queue and poll per process).
func WithFetch(cooldown, poll time.Duration) Option {
	return func(c *config) { c.cooldown, c.poll, c.pollSet = cooldown, poll, true }
}

// WithMaxAttempts sets how many times a job runs before it is discarded (a dead
// letter), unless its args or InsertOpts say otherwise. Default River's 25, which
// with River's backoff (attempt^4 seconds plus jitter) spans about three weeks.
func WithMaxAttempts(n int) Option {
	return func(c *config) { c.maxAttempts = n }
}

// WithRescueStuckAfter sets how long a job may stay running before it counts as
// stuck (its worker died) and is retried, or discarded if out of attempts. It must
// be longer than the job timeout. Default River's: 1 h, or job timeout + 1 h when
// the job timeout is longer.
func WithRescueStuckAfter(d time.Duration) Option {
	return func(c *config) { c.rescueAfter = d }
}

// WithJobTimeout sets how long a job may run before its context is cancelled;
// -1 means never. Default River's 1 min. A worker can override it (Timeout method).
func WithJobTimeout(d time.Duration) Option {
	return func(c *config) { c.jobTimeout = d }
}

// WithLogger sets River's logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithPlugins installs River hooks and middleware on every job (tracing, metrics,
// request context); in order, outermost first, after the Queue's own hook that
// gives each job its idempotency key. Default none.
func WithPlugins(p ...rivertype.Plugin) Option {
	return func(c *config) { c.plugins = append(c.plugins, p...) }
}

// WithRetryPolicy sets when a failed job runs again. Default River's
// DefaultClientRetryPolicy (attempt^4 seconds, with jitter).
func WithRetryPolicy(p river.ClientRetryPolicy) Option {
	return func(c *config) { c.retryPolicy = p }
}

// WithClock makes River read the time from clock instead of the system clock, so
// a test can move time forward (scheduled jobs, retries, rescue). Default the
// system clock. For tests only.
func WithClock(clock rivertype.TimeGenerator) Option {
	return func(c *config) { c.clock = clock }
}

// WithListener makes a PostgreSQL Queue hear of new jobs by LISTEN/NOTIFY on one
// dedicated pgx connection to dsn (the same database as the db.DB), so a job
// starts a few milliseconds after its transaction commits instead of at the next
// poll, and polling slows to a 1 s fallback (DefaultListenerPollInterval). Default
// none: PostgreSQL queues poll every 50 ms (WithFetch), since the Queue does not
// know the DSN. Ignored on SQLite, which River notifies through a table it polls
// every 50 ms.
func WithListener(dsn string) Option {
	return func(c *config) { c.listenDSN = dsn }
}

// WithID sets the River client's id, unique among the processes on one database.
// Default River's: host name and start time.
func WithID(id string) Option {
	return func(c *config) { c.id = id }
}

// WithHardStopWait sets how long Stop waits for jobs to return after it cancels
// their contexts. Default DefaultHardStopWait (10 s).
func WithHardStopWait(d time.Duration) Option {
	return func(c *config) { c.hardStopWait = d }
}

// withTestOnly starts maintenance (rescuer, scheduler) without River's random
// start-up delay; for this package's tests.
func withTestOnly() Option {
	return func(c *config) { c.testOnly = true }
}
