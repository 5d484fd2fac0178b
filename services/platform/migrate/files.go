package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"

	"entgo.io/ent/dialect"
)

// Folder is the folder of a Source that holds a dialect's migrations: "postgres"
// for dialect.Postgres, "sqlite" for dialect.SQLite.
func Folder(dia string) (string, error) {
	switch dia {
	case dialect.Postgres:
		return "postgres", nil
	case dialect.SQLite:
		return "sqlite", nil
	}
	return "", fmt.Errorf("migrate: unsupported dialect %q", dia)
}

// sumFile is atlas's integrity file, which Generate keeps beside the migrations.
// Apply skips it: it checks each applied file against its own recorded checksum.
const sumFile = "atlas.sum"

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// migration is one file of a source.
type migration struct {
	version  int
	name     string
	file     string // folder/NNNN_name.sql, for messages
	sql      string
	checksum string
}

// load reads the migrations of one dialect from a source, in ascending version
// order, refusing malformed names, duplicate versions and stray files.
func load(src Source, folder string) ([]migration, error) {
	entries, err := fs.ReadDir(src.FS, folder)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("migrate: source %q has no %s/ folder", src.Name, folder)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: source %q: %w", src.Name, err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries { // ReadDir sorts by name, so by version
		if e.Name() == sumFile {
			continue
		}
		path := folder + "/" + e.Name()
		m := fileName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("migrate: source %q: %s: not a migration (want NNNN_name.sql, lower case)", src.Name, path)
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("migrate: source %q: %s: versions start at 0001", src.Name, path)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrate: source %q: %s and %s have the same version %04d", src.Name, prev, path, v)
		}
		seen[v] = path
		b, err := fs.ReadFile(src.FS, path)
		if err != nil {
			return nil, fmt.Errorf("migrate: source %q: %w", src.Name, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: m[2], file: path, sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	return out, nil
}
