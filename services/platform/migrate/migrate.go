// Package migrate applies a service's versioned SQL migrations, and writes new ones
// from ent schemas (Generate). Schemas change only through these files: the kit
// never auto-migrates, and the SQL of a migration never changes once released.
//
// A migration source is an fs.FS (usually embedded) with one folder per dialect,
// postgres/ and sqlite/, each holding files NNNN_name.sql: a 4-digit version from
// 0001 and a lower-case name. A package that owns tables exports one:
//
//	//go:embed migrations
//	var files embed.FS
//	var Migrations, _ = fs.Sub(files, "migrations")
//
// and the service applies its own and the kit's at start, before serving:
//
//	err := migrate.Apply(ctx, d,
//		migrate.Source{Name: "audit", FS: audit.Migrations},
//		migrate.Source{Name: "epro", FS: epro.Migrations})
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"entgo.io/ent/dialect"

	"github.com/trialhub/trialhub/services/platform/db"
)

// Source is one named set of migrations: FS holds postgres/ and sqlite/ folders of
// NNNN_name.sql files. Name keys its rows in schema_migrations, so it must not
// change once released.
type Source struct {
	Name string
	FS   fs.FS
}

// Table records every applied migration: one row per (source, version) with the
// file's name and SHA-256 checksum.
const Table = "schema_migrations"

// lockKey is the PostgreSQL advisory lock that serialises Apply across replicas
// (an arbitrary constant: "trialhub" in ASCII, as an int64).
const lockKey int64 = 0x747269616c687562

// Apply applies, source by source in the order given and by ascending version,
// every migration of d's dialect that is not yet applied. Each migration runs in
// its own transaction together with its row in schema_migrations, so a failed
// migration leaves nothing behind and the next Apply retries it.
//
// Before applying anything it checks every source and refuses, naming the file:
// a malformed file name, two files of one version, an applied migration whose file
// changed (checksum) or vanished, and a new file whose version is below one already
// applied. On PostgreSQL the whole run holds an advisory lock, so replicas starting
// together apply each migration once; on SQLite the single writer and each
// transaction's re-check do the same.
func Apply(ctx context.Context, d *db.DB, sources ...Source) error {
	folder, err := Folder(d.Dialect())
	if err != nil {
		return err
	}
	plans := make([][]migration, len(sources))
	names := map[string]bool{}
	for i, src := range sources {
		if src.Name == "" || src.FS == nil {
			return fmt.Errorf("migrate: source %d: want a Name and an FS", i)
		}
		if names[src.Name] {
			return fmt.Errorf("migrate: source %q given twice", src.Name)
		}
		names[src.Name] = true
		if plans[i], err = load(src, folder); err != nil {
			return err
		}
	}

	var conn *sql.Conn // PostgreSQL: the session that holds the advisory lock
	if d.Dialect() == dialect.Postgres {
		if conn, err = d.SQL().Conn(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
			return fmt.Errorf("migrate: take advisory lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey)
	}
	r := runner{d: d, conn: conn}
	if err := r.exec(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
		source text NOT NULL,
		version integer NOT NULL,
		name text NOT NULL,
		checksum text NOT NULL,
		applied_at timestamp NOT NULL,
		PRIMARY KEY (source, version))`); err != nil {
		return fmt.Errorf("migrate: create %s: %w", Table, err)
	}
	applied, err := r.applied(ctx)
	if err != nil {
		return err
	}
	var pending []struct {
		src string
		m   migration
	}
	for i, src := range sources {
		done := applied[src.Name]
		files := map[int]migration{}
		top := 0
		for _, m := range plans[i] {
			files[m.version] = m
		}
		for v, row := range done {
			m, ok := files[v]
			switch {
			case !ok:
				return fmt.Errorf("migrate: source %q: applied migration %04d_%s.sql vanished from %s/", src.Name, v, row.name, folder)
			case m.checksum != row.checksum || m.name != row.name:
				return fmt.Errorf("migrate: source %q: applied migration %s changed since it was applied (checksum %.12s, applied %04d_%s.sql with %.12s); released migrations never change, add a new one",
					src.Name, m.file, m.checksum, v, row.name, row.checksum)
			}
			top = max(top, v)
		}
		for _, m := range plans[i] {
			if _, ok := done[m.version]; ok {
				continue
			}
			if m.version < top {
				return fmt.Errorf("migrate: source %q: %s is older than applied version %04d; give it a version above %04d", src.Name, m.file, top, top)
			}
			pending = append(pending, struct {
				src string
				m   migration
			}{src.Name, m})
		}
	}
	for _, p := range pending {
		if err := r.apply(ctx, p.src, p.m); err != nil {
			return err
		}
	}
	return nil
}

type appliedRow struct{ name, checksum string }

// runner runs statements on the advisory-locked connection (PostgreSQL) or the
// database's writer (SQLite).
type runner struct {
	d    *db.DB
	conn *sql.Conn
}

func (r runner) exec(ctx context.Context, q string) error {
	var err error
	if r.conn != nil {
		_, err = r.conn.ExecContext(ctx, q)
	} else {
		_, err = r.d.SQL().ExecContext(ctx, q)
	}
	return err
}

func (r runner) applied(ctx context.Context) (map[string]map[int]appliedRow, error) {
	q := `SELECT source, version, name, checksum FROM ` + Table
	var rows *sql.Rows
	var err error
	if r.conn != nil {
		rows, err = r.conn.QueryContext(ctx, q)
	} else {
		rows, err = r.d.SQL().QueryContext(ctx, q)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	defer rows.Close()
	out := map[string]map[int]appliedRow{}
	for rows.Next() {
		var src string
		var v int
		var row appliedRow
		if err := rows.Scan(&src, &v, &row.name, &row.checksum); err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
		}
		if out[src] == nil {
			out[src] = map[int]appliedRow{}
		}
		out[src][v] = row
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	return out, nil
}

// apply runs one migration and records it, in one transaction.
func (r runner) apply(ctx context.Context, src string, m migration) error {
	record := `INSERT INTO ` + Table + ` (source, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)`
	if r.d.Dialect() == dialect.SQLite {
		record = `INSERT INTO ` + Table + ` (source, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)`
	}
	run := func(ctx context.Context, tx *sql.Tx) error {
		if r.conn == nil {
			// SQLite: another process may have applied it since we read; our
			// BEGIN IMMEDIATE holds the write lock now.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+Table+` WHERE source = ? AND version = ?`, src, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, record, src, m.version, m.name, m.checksum, time.Now().UTC())
		return err
	}
	var err error
	if r.conn != nil {
		err = inConnTx(ctx, r.conn, run)
	} else {
		err = r.d.InTx(ctx, func(ctx context.Context, tx *db.Tx) error { return run(ctx, tx.Tx) })
	}
	if err != nil {
		return fmt.Errorf("migrate: source %q: apply %s: %w", src, m.file, err)
	}
	return nil
}

func inConnTx(ctx context.Context, conn *sql.Conn, fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
