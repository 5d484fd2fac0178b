package db_test

import (
	"errors"

	entsql "entgo.io/ent/dialect/sql"
)

// entRows receives the rows of an ent driver Query.
type entRows struct{ rows entsql.Rows }

func (e *entRows) r() *entsql.Rows { return &e.rows }

func (e *entRows) count() (int, error) {
	defer e.rows.Close()
	if !e.rows.Next() {
		return 0, errors.New("no row")
	}
	var n int
	err := e.rows.Scan(&n)
	return n, err
}
