package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/storepath"
)

// closureSQL walks the reference graph inside SQLite (a recursive query
// over Refs) from the JSON array of roots, so a closure of thousands of
// paths costs one statement instead of one per path.
const closureSQL = `with recursive c(id) as (
  select v.id from json_each(?) j join ValidPaths v on v.path = j.value
  union
  select f.reference from Refs f join c on f.referrer = c.id
)
`

// queryClosureSQL returns one row per path of the closure, its references
// joined by spaces (store paths have none): a row per reference would
// cost three times the rows.
const queryClosureSQL = closureSQL + `select v.path, v.hash, v.registrationTime, v.deriver, v.narSize, v.ultimate, v.sigs, v.ca,
  (select group_concat(r.path, ' ') from Refs f join ValidPaths r on r.id = f.reference where f.referrer = v.id)
from c join ValidPaths v on v.id = c.id`

// queryClosurePathsSQL returns the paths of the closure alone.
const queryClosurePathsSQL = closureSQL + `select v.path from c join ValidPaths v on v.id = c.id`

// QueryClosure returns the path infos of the runtime closure of roots (each
// path once, in no particular order), read in one consistent snapshot. A
// root that is not valid is an error wrapping ErrNotValid.
func (d *DB) QueryClosure(ctx context.Context, roots []string) ([]*PathInfo, error) {
	rows, err := d.queryClosure(ctx, queryClosureSQL, roots)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byPath := make(map[string]*PathInfo)
	var infos []*PathInfo
	for rows.Next() {
		var (
			path string
			row  infoRow
		)
		if err := rows.Scan(append([]any{&path}, row.dest()...)...); err != nil {
			return nil, fmt.Errorf("querying closure: %w", err)
		}
		info, err := row.info(path)
		if err != nil {
			return nil, fmt.Errorf("querying closure: %s: %w", path, err)
		}
		if refs := strings.Fields(row.ref.String); len(refs) > 0 {
			info.References = refs
		}
		byPath[path] = info
		infos = append(infos, info)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
	}
	for _, r := range roots {
		if byPath[r] == nil {
			return nil, fmt.Errorf("querying closure of %s: %w", r, ErrNotValid)
		}
	}
	for _, i := range infos {
		slices.Sort(i.References)
	}
	return infos, nil
}

// QueryClosurePaths returns the paths of the runtime closure of roots (each
// once, in no particular order), without their path info: what a listing
// of the closure needs, at a third of the cost of QueryClosure.
func (d *DB) QueryClosurePaths(ctx context.Context, roots []string) ([]string, error) {
	rows, err := d.queryClosure(ctx, queryClosurePathsSQL, roots)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var paths []string
	have := make(map[string]bool)
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("querying closure: %w", err)
		}
		paths = append(paths, p)
		have[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
	}
	for _, r := range roots {
		if !have[r] {
			return nil, fmt.Errorf("querying closure of %s: %w", r, ErrNotValid)
		}
	}
	return paths, nil
}

// queryClosure runs one of the closure queries on roots.
func (d *DB) queryClosure(ctx context.Context, query string, roots []string) (*sql.Rows, error) {
	for _, r := range roots {
		if err := storepath.Check(d.dir, r); err != nil {
			return nil, fmt.Errorf("querying closure: %w", err)
		}
	}
	arg, err := json.Marshal(roots)
	if err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, query, string(arg))
	if err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
	}
	return rows, nil
}
