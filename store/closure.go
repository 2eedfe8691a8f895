package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// queryClosureSQL walks the reference graph inside SQLite (a recursive
// query over Refs) and returns one row per (path, reference) of the whole
// closure of the JSON array of roots, so a closure of thousands of paths
// costs one statement instead of one per path.
const queryClosureSQL = `with recursive c(id) as (
  select v.id from json_each(?) j join ValidPaths v on v.path = j.value
  union
  select f.reference from Refs f join c on f.referrer = c.id
)
select v.path, v.hash, v.registrationTime, v.deriver, v.narSize, v.ultimate, v.sigs, v.ca, r.path
from c join ValidPaths v on v.id = c.id
left join Refs f on f.referrer = v.id left join ValidPaths r on r.id = f.reference`

// QueryClosure returns the path infos of the runtime closure of roots (each
// path once, in no particular order), read in one consistent snapshot. A
// root that is not valid is an error wrapping ErrNotValid.
func (d *DB) QueryClosure(ctx context.Context, roots []string) ([]*PathInfo, error) {
	for _, r := range roots {
		if err := CheckPath(d.dir, r); err != nil {
			return nil, fmt.Errorf("querying closure: %w", err)
		}
	}
	arg, err := json.Marshal(roots)
	if err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, queryClosureSQL, string(arg))
	if err != nil {
		return nil, fmt.Errorf("querying closure: %w", err)
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
		info := byPath[path]
		if info == nil {
			if info, err = row.info(path); err != nil {
				return nil, fmt.Errorf("querying closure: %s: %w", path, err)
			}
			byPath[path] = info
			infos = append(infos, info)
		}
		if row.ref.Valid {
			info.References = append(info.References, row.ref.String)
		}
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
