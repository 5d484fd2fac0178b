package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/trialhub/trialhub/services/platform/auth"
	"github.com/trialhub/trialhub/services/platform/client"
	"github.com/trialhub/trialhub/services/platform/db"
	"github.com/trialhub/trialhub/services/platform/logs"
)

// Main runs svc as its own process, the whole body of services/<name>/cmd/<name>:
// configuration from flags, TRIALHUB_* environment variables and an optional YAML
// file (see Config), JSON logs on stdout, and a graceful stop on SIGINT or SIGTERM.
// It exits the process with status 1 when the service cannot start.
func Main(svc Service) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, svc, os.Args[1:], os.LookupEnv); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", svc.Name, err)
		stop()
		os.Exit(1)
	}
}

// Run is Main without the process: it serves svc until ctx is done. Besides
// LogLevelPath, the log level follows two signals: SIGUSR1 makes it one step
// more verbose (error, warn, info, debug), SIGUSR2 puts back the configured one.
func Run(ctx context.Context, svc Service, args []string, lookup func(string) (string, bool)) error {
	cfg, err := LoadConfig(svc.Name, args, lookup)
	if err != nil {
		return err
	}
	l, _ := cfg.Level()
	level := new(slog.LevelVar) // changed at runtime at LogLevelPath
	level.Set(l)
	// JSON logs on stdout through the redaction layer (no secrets or personal
	// data reach the output, whatever a handler logs).
	log := slog.New(logs.NewHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})))
	stopSignals := levelSignals(ctx, level, l, log)
	defer stopSignals()
	p := Process{
		Name:     svc.Name,
		Services: []Service{svc},
		DSN:      func(string) string { return cfg.DatabaseURL },
		Log:      log,
		Level:    level,
		SlowCall: cfg.SlowCall,
		Dependency: func(_ string, dep client.Dependency) (client.Dependency, error) {
			return cfg.Dependency(dep, lookup)
		},
	}
	if cfg.PostgresDriver != "" {
		p.DBOptions = append(p.DBOptions, db.WithPostgresDriver(db.PostgresDriver(cfg.PostgresDriver)))
	}
	if cfg.JWKSURL != "" {
		// Keys are re-fetched every 10 minutes, and on an unknown kid at most every
		// 30 s, so a rotation is picked up without a restart.
		keys := auth.NewRemoteKeys(auth.FetchJWKS(nil, cfg.JWKSURL), 10*time.Minute, 30*time.Second)
		p.Verifier = auth.NewVerifier(keys, cfg.Issuer)
	}
	switch {
	case cfg.ServiceSecretFile != "":
		issuer, err := cfg.Dependency(client.Service("patient", ""), lookup)
		if err != nil {
			return fmt.Errorf("service tokens come from the patient service: %w", err)
		}
		tokens := NewServiceTokens(issuer, svc.Name, auth.FileToken(cfg.ServiceSecretFile), client.WithLogger(log))
		p.Tokens = func(string) auth.TokenSource { return tokens }
	case cfg.ServiceTokenFile != "":
		p.Tokens = func(string) auth.TokenSource { return auth.FileToken(cfg.ServiceTokenFile) }
	}
	p.ServerOptions = append(p.ServerOptions, WithDrainDelay(cfg.DrainDelay), WithShedding(Shedding{
		Disabled: cfg.ShedDisabled, MaxInFlight: cfg.ShedMaxInFlight, MinLimit: cfg.ShedMinLimit,
	}))
	if len(cfg.CORSOrigins) > 0 {
		p.ServerOptions = append(p.ServerOptions, WithCORSOrigins(cfg.CORSOrigins...))
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	return p.Serve(ctx, ln)
}

// levelSignals changes level on SIGUSR1 (one step more verbose, down to debug)
// and SIGUSR2 (back to configured) until ctx ends or the returned stop is called.
func levelSignals(ctx context.Context, level *slog.LevelVar, configured slog.Level, log *slog.Logger) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case s := <-sig:
				before := level.Level()
				if s == syscall.SIGUSR1 {
					level.Set(max(before-4, slog.LevelDebug))
				} else {
					level.Set(configured)
				}
				log.Warn("log level changed", "from", before.String(), "to", level.Level().String(), "signal", s.String())
			}
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}
