package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Cluster is a throwaway PostgreSQL server in a temporary folder, tuned for tests
// (no fsync: its data is never worth keeping).
type Cluster struct {
	// URL is the server's maintenance database, postgres://postgres@127.0.0.1:PORT/postgres.
	URL string

	dir     string
	bin     string
	asUser  string // run the server as this user ("postgres" when we are root)
	opts    string // the server's options, kept for Up
	durable bool
	down    bool // stopped by Down
}

// Start initialises and starts a cluster on a free loopback port.
func Start(ctx context.Context) (*Cluster, error) { return start(ctx, false) }

// start is Start; durable keeps synchronous_commit on, so a commit a client saw
// acknowledged survives the server being killed (Down). fsync stays off: the
// machine does not crash, only the server does.
func start(ctx context.Context, durable bool) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "trialhub-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, durable: durable}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		c.asUser = "postgres"
		u, err := user.Lookup(c.asUser)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs a %q user: %w", c.asUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A free port can be taken between our probe and the server's bind; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		syncCommit := "off"
		if durable {
			syncCommit = "on"
		}
		c.opts = strings.Join([]string{
			"-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=''",
			"-c", "fsync=off",
			"-c", "synchronous_commit=" + syncCommit,
			"-c", "full_page_writes=off",
			"-c", "max_connections=300",
		}, " ")
		out, err := c.pgCtlStart(ctx)
		if err == nil {
			c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("pgtest: %w", lastErr)
}

func (c *Cluster) pgCtlStart(ctx context.Context) ([]byte, error) {
	data := filepath.Join(c.dir, "data")
	return c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", c.opts, "start")
}

// Down kills the server the way a crash would (pg_ctl stop -m immediate: every
// connection dropped, no shutdown checkpoint) and keeps its data; Up starts it
// again. Clients see connections refused until then.
func (c *Cluster) Down(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	c.down = true
	return nil
}

// Up starts the server Down stopped, on the same port and data (it recovers
// from its write-ahead log first).
func (c *Cluster) Up(ctx context.Context) error {
	if out, err := c.pgCtlStart(ctx); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	c.down = false
	return nil
}

// Stop stops the server at once and removes its folder.
func (c *Cluster) Stop() error {
	if c.down {
		return os.RemoveAll(c.dir)
	}
	out, err := c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	rmErr := os.RemoveAll(c.dir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return rmErr
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// binDir finds the PostgreSQL server binaries: $PG_BIN, `pg_config --bindir`, or the
// newest /usr/lib/postgresql/*/bin (Debian's layout).
func binDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(candidates, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(candidates[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(candidates[j])))
		return vi > vj
	})
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: no PostgreSQL server install found (initdb); install postgresql or set PG_BIN")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
