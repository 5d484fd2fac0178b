package pgtest_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"

	"github.com/trialhub/trialhub/services/platform/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestEachTestGetsItsOwnDatabaseDroppedAfterwards(t *testing.T) {
	var names []string
	var server string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			dsn := pgtest.New(t)
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TABLE marker (id int)`); err != nil {
				t.Fatalf("a fresh database should be empty and writable: %v", err)
			}
			u, _ := url.Parse(dsn)
			names = append(names, strings.TrimPrefix(u.Path, "/"))
			u.Path = "/postgres"
			server = u.String()
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two distinct ones", names)
	}
	admin, err := sql.Open("postgres", server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var left int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, "{"+strings.Join(names, ",")+"}").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d test databases left behind after their tests ended", left)
	}
}

func TestDedicatedServerRestartsWithItsData(t *testing.T) {
	c := pgtest.Dedicated(t)
	db, err := sql.Open("postgres", c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE acknowledged (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO acknowledged VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("the server answers while down")
	}
	if err := c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	// The pool's old connections died with the server; database/sql replaces them.
	if err := db.QueryRow(`SELECT count(*) FROM acknowledged`).Scan(&n); err != nil {
		t.Fatalf("after Up, on the same URL: %v", err)
	}
	if n != 3 {
		t.Fatalf("%d rows after the restart, want the 3 committed before it", n)
	}
}
