package platform

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
)

// Config is how one service runs on its own (services/<name>/cmd/<name>): 12-factor,
// from flags and TRIALHUB_* environment variables, optionally on top of a YAML file
// (TRIALHUB_CONFIG or --config). Flags win over the environment, the environment
// over the file, the file over the defaults.
//
// The file keeps the shape of the design TrialHub replaces: top-level settings, and
// one block per dependency named <Name>Rpc, times in milliseconds:
//
//	Addr: ":8082"
//	DatabaseUrl: postgres://trial@db:5432/trial?sslmode=disable
//	JwksUrl: http://patient:8080/.well-known/jwks.json
//	PatientRpc: {Url: "http://patient:8080", Timeout: 2000}
//	NotificationRpc: {Timeout: 500}
//
// Each dependency is then read from TRIALHUB_<NAME>_* (see client.FromEnv).
type Config struct {
	// Addr is the listen address. Env TRIALHUB_ADDR, flag --addr. Default ":8080".
	Addr string `env:"ADDR" yaml:"Addr"`
	// DatabaseURL is the service's own database: postgres://... in production,
	// sqlite:path for a single machine. Env TRIALHUB_DATABASE_URL, flag
	// --database-url. Required.
	DatabaseURL string `env:"DATABASE_URL" yaml:"DatabaseUrl"`
	// JWKSURL is where the token issuer (the patient service) publishes its keys.
	// Env TRIALHUB_JWKS_URL, flag --jwks-url. Required unless the process issues
	// tokens itself.
	JWKSURL string `env:"JWKS_URL" yaml:"JwksUrl"`
	// Issuer is the iss claim tokens must carry. Env TRIALHUB_ISSUER. Default
	// "trialhub".
	Issuer string `env:"ISSUER" yaml:"Issuer"`
	// ServiceTokenFile holds this service's SERVICE token for its outbound calls,
	// re-read on every use so a rotated secret is picked up. Env
	// TRIALHUB_SERVICE_TOKEN_FILE.
	ServiceTokenFile string `env:"SERVICE_TOKEN_FILE" yaml:"ServiceTokenFile"`
	// ServiceSecretFile holds this service's client secret: its SERVICE tokens are
	// then obtained from the patient service (the "patient" dependency:
	// TRIALHUB_PATIENT_URL) by the client-credentials exchange, re-reading the
	// file each time so a rotated secret is picked up. Env
	// TRIALHUB_SERVICE_SECRET_FILE. Wins over ServiceTokenFile.
	ServiceSecretFile string `env:"SERVICE_SECRET_FILE" yaml:"ServiceSecretFile"`
	// CORSOrigins are the browser origins allowed to call (comma-separated in the
	// environment). Env TRIALHUB_CORS_ORIGINS. Default none.
	CORSOrigins []string `env:"CORS_ORIGINS" envSeparator:"," yaml:"CorsOrigins"`
	// PostgresDriver is the PostgreSQL driver: "pgx" (default; it caches prepared
	// statements, see the db package's figures) or "pq" (github.com/lib/pq). Env
	// TRIALHUB_POSTGRES_DRIVER.
	PostgresDriver string `env:"POSTGRES_DRIVER" yaml:"PostgresDriver"`
	// DrainDelay is how long a stopping process keeps answering while its health
	// says NOT_SERVING, so load balancers stop sending first. Env
	// TRIALHUB_DRAIN_DELAY, a Go duration. Default 5s.
	DrainDelay time.Duration `env:"DRAIN_DELAY" yaml:"DrainDelay"`
	// Shed bounds the requests in flight (see Shedding): TRIALHUB_SHED_MAX_IN_FLIGHT
	// (default 1024), TRIALHUB_SHED_MIN_LIMIT (default 64), TRIALHUB_SHED_DISABLED.
	ShedMaxInFlight int  `env:"SHED_MAX_IN_FLIGHT" yaml:"ShedMaxInFlight"`
	ShedMinLimit    int  `env:"SHED_MIN_LIMIT" yaml:"ShedMinLimit"`
	ShedDisabled    bool `env:"SHED_DISABLED" yaml:"ShedDisabled"`
	// LogLevel is debug, info, warn or error. Env TRIALHUB_LOG_LEVEL, flag
	// --log-level. Default info.
	LogLevel string `env:"LOG_LEVEL" yaml:"LogLevel"`
	// SlowCall is the duration from which a call's rpc line is logged at WARN as
	// slow. Env TRIALHUB_SLOW_CALL, a Go duration; "-1s" (any negative) turns it
	// off. Default 500ms.
	SlowCall time.Duration `env:"SLOW_CALL" yaml:"SlowCall"`

	// deps holds the file's <Name>Rpc blocks, applied by Dependency.
	deps map[string]rpcBlock
}

// rpcBlock is a dependency's block in the YAML file; times are milliseconds, as in
// the configuration TrialHub replaces.
type rpcBlock struct {
	URL                 string  `yaml:"Url"`
	Timeout             int     `yaml:"Timeout"`
	MaxAttempts         int     `yaml:"MaxAttempts"`
	RetryBudget         float64 `yaml:"RetryBudget"`
	BreakerFailureRatio float64 `yaml:"BreakerFailureRatio"`
	BreakerMinCalls     uint32  `yaml:"BreakerMinCalls"`
	BreakerOpenFor      int     `yaml:"BreakerOpenFor"`
	BreakerDisabled     bool    `yaml:"BreakerDisabled"`
}

// LoadConfig reads the configuration of a service called name from args (without
// the program name), the environment (lookup is os.LookupEnv in production) and
// the YAML file either names.
func LoadConfig(name string, args []string, lookup func(string) (string, bool)) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var (
		file     = fs.String("config", "", "YAML configuration file (env TRIALHUB_CONFIG)")
		addr     = fs.String("addr", "", "listen address (env TRIALHUB_ADDR; default :8080)")
		dsn      = fs.String("database-url", "", "database: postgres://... or sqlite:path (env TRIALHUB_DATABASE_URL)")
		jwks     = fs.String("jwks-url", "", "the token issuer's JWKS URL (env TRIALHUB_JWKS_URL)")
		logLevel = fs.String("log-level", "", "debug, info, warn or error (env TRIALHUB_LOG_LEVEL; default info)")
	)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := Config{Addr: ":8080", Issuer: "trialhub", LogLevel: "info", DrainDelay: 5 * time.Second, SlowCall: DefaultSlowCall}
	if *file == "" {
		*file, _ = lookup("TRIALHUB_CONFIG")
	}
	if *file != "" {
		if err := cfg.readFile(*file); err != nil {
			return Config{}, err
		}
	}
	environ := map[string]string{}
	for _, key := range []string{"ADDR", "DATABASE_URL", "JWKS_URL", "ISSUER", "SERVICE_TOKEN_FILE", "SERVICE_SECRET_FILE", "CORS_ORIGINS", "POSTGRES_DRIVER", "DRAIN_DELAY", "SHED_MAX_IN_FLIGHT", "SHED_MIN_LIMIT", "SHED_DISABLED", "LOG_LEVEL", "SLOW_CALL"} {
		if v, ok := lookup("TRIALHUB_" + key); ok {
			environ["TRIALHUB_"+key] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: "TRIALHUB_", Environment: environ}); err != nil {
		return Config{}, fmt.Errorf("configuration from the environment: %w", err)
	}
	for flagValue, dst := range map[*string]*string{addr: &cfg.Addr, dsn: &cfg.DatabaseURL, jwks: &cfg.JWKSURL, logLevel: &cfg.LogLevel} {
		if *flagValue != "" {
			*dst = *flagValue
		}
	}
	if cfg.DatabaseURL == "" {
		return Config{}, errors.New("no database: set TRIALHUB_DATABASE_URL or --database-url (postgres://... or sqlite:path)")
	}
	if _, err := cfg.Level(); err != nil {
		return Config{}, err
	}
	switch db.PostgresDriver(cfg.PostgresDriver) {
	case "", db.PGX, db.LibPQ:
	default:
		return Config{}, fmt.Errorf("postgres driver %q: want %q or %q", cfg.PostgresDriver, db.PGX, db.LibPQ)
	}
	return cfg, nil
}

// readFile reads the YAML file: the top-level settings into cfg, the <Name>Rpc
// blocks into cfg.deps. Unknown keys are refused, so a typo is not a silently
// ignored setting.
func (cfg *Config) readFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("configuration file: %w", err)
	}
	file := struct {
		Config `yaml:",inline"`
		Blocks map[string]yaml.Node `yaml:",inline"`
	}{Config: *cfg}
	if err := strictYAML(data, &file); err != nil {
		return fmt.Errorf("configuration file %s: %w", path, err)
	}
	*cfg = file.Config
	cfg.deps = map[string]rpcBlock{}
	for key, node := range file.Blocks {
		name, ok := strings.CutSuffix(key, "Rpc")
		if !ok || name == "" {
			return fmt.Errorf("configuration file %s: unknown setting %q", path, key)
		}
		raw, err := yaml.Marshal(&node)
		if err != nil {
			return err
		}
		var b rpcBlock
		if err := strictYAML(raw, &b); err != nil {
			return fmt.Errorf("configuration file %s: %s: %w", path, key, err)
		}
		cfg.deps[strings.ToLower(name)] = b
	}
	return nil
}

// strictYAML decodes data into v, refusing keys v has no field for.
func strictYAML(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Level is the configured log level.
func (cfg Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	return l, nil
}

// Dependency completes dep from the file's block for it (named after dep.Name:
// "push-vendor" is PushVendorRpc, matched case-insensitively) and then from
// TRIALHUB_<NAME>_* in the environment. A dependency without a URL is an error.
func (cfg Config) Dependency(dep client.Dependency, lookup func(string) (string, bool)) (client.Dependency, error) {
	if b, ok := cfg.deps[strings.ReplaceAll(strings.ToLower(dep.Name), "-", "")]; ok {
		ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
		if b.URL != "" {
			dep.BaseURL = b.URL
		}
		if b.Timeout > 0 {
			dep.Timeout = ms(b.Timeout)
		}
		if b.MaxAttempts > 0 {
			dep.MaxAttempts = b.MaxAttempts
		}
		if b.RetryBudget > 0 {
			dep.RetryBudget = b.RetryBudget
		}
		if b.BreakerFailureRatio > 0 {
			dep.Breaker.FailureRatio = b.BreakerFailureRatio
		}
		if b.BreakerMinCalls > 0 {
			dep.Breaker.MinCalls = b.BreakerMinCalls
		}
		if b.BreakerOpenFor > 0 {
			dep.Breaker.OpenFor = ms(b.BreakerOpenFor)
		}
		dep.Breaker.Disabled = dep.Breaker.Disabled || b.BreakerDisabled
	}
	dep, err := client.FromEnv(dep, lookup)
	if err != nil {
		return dep, err
	}
	if dep.BaseURL == "" {
		env := "TRIALHUB_" + strings.ToUpper(strings.ReplaceAll(dep.Name, "-", "_")) + "_URL"
		return dep, fmt.Errorf("dependency %s has no URL: set %s or Url in its configuration block", dep.Name, env)
	}
	return dep, nil
}
