// Command pgtest runs a command with a throwaway PostgreSQL server: it starts one
// from the local install on a free port, runs the command with
// TRIALHUB_TEST_POSTGRES_URL set to it, stops the server and exits with the
// command's status. `make test` runs the Go tests of every module under it, so the
// whole run shares one server and each test still gets its own database.
//
// Usage: go run ./services/platform/cmd/pgtest -- COMMAND [ARG...]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgtest -- COMMAND [ARG...]")
		os.Exit(2)
	}
	os.Exit(run(args))
}

func run(args []string) int {
	if url := os.Getenv(pgtest.EnvURL); url != "" {
		fmt.Fprintf(os.Stderr, "pgtest: using the server in %s\n", pgtest.EnvURL)
		return command(args, os.Environ())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cluster, err := pgtest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL at %s\n", cluster.URL)
	return command(args, append(os.Environ(), pgtest.EnvURL+"="+cluster.URL))
}

func command(args, env []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Forward interrupts so the command stops and the deferred server stop runs.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	return 0
}
