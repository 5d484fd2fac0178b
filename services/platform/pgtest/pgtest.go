// Package pgtest gives tests a real PostgreSQL: each test gets its own fresh database
// on a throwaway server started from the local PostgreSQL install.
//
// When TRIALHUB_TEST_POSTGRES_URL is set (make test starts one server for the whole
// run and sets it), databases are created on that server. Otherwise the package's
// TestMain must call pgtest.Main, which starts a server for the test binary on a
// free port and stops it at the end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.New(t) // postgres://... of a new, empty database, dropped after the test
//	}
//
// A test that restarts the database under load gets a server of its own:
// pgtest.Dedicated(t), with Down and Up on the same port and data.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL driver
)

// EnvURL names the environment variable holding an existing server's URL.
const EnvURL = "TRIALHUB_TEST_POSTGRES_URL"

var (
	mu      sync.Mutex
	mainRun bool
	cluster *Cluster
	started error
)

// Main runs the package's tests, with a PostgreSQL server started for them on first
// use when EnvURL is not set, and stops it afterwards. Call it from TestMain.
func Main(m *testing.M) {
	mu.Lock()
	mainRun = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	mu.Unlock()
	os.Exit(code)
}

// serverURL returns the URL of the server's maintenance database.
func serverURL() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if !mainRun {
		return "", fmt.Errorf("pgtest: set %s or call pgtest.Main from TestMain", EnvURL)
	}
	if cluster == nil && started == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, started = Start(ctx)
	}
	if started != nil {
		return "", started
	}
	return cluster.URL, nil
}

// Dedicated starts a PostgreSQL server of the test's own, which the test may
// stop and start again (Down, Up: a database restart under load) without
// touching the server other tests share; it is removed when the test ends. Its
// URL is the maintenance database; commits are durable across Down (see
// Cluster.Down). Starting one takes a second or two.
func Dedicated(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := start(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// New creates a fresh, empty database for the test and returns its DSN. The
// database is dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	server, err := serverURL()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("postgres", server)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		// FORCE ends connections a test left open (PostgreSQL 13+).
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: server URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
