package store

import (
	"context"
	"fmt"
)

// NewPath is a path registered in the database, with its row id there:
// ids grow with each registration (ValidPaths.id is AUTOINCREMENT), so
// the largest one seen marks how far a reader has got.
type NewPath struct {
	ID      int64
	Path    string
	Deriver string
}

// LastID is the id of the newest registration, 0 for an empty database.
func (d *DB) LastID(ctx context.Context) (int64, error) {
	var id int64
	if err := d.db.QueryRowContext(ctx, `select coalesce(max(id), 0) from ValidPaths`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the Nix database %s: %w", d.path, err)
	}
	return id, nil
}

// PathsSince returns the valid paths registered after the one with id
// after, oldest first, at most limit of them.
func (d *DB) PathsSince(ctx context.Context, after int64, limit int) ([]NewPath, error) {
	rows, err := d.db.QueryContext(ctx, `select id, path, coalesce(deriver, '') from ValidPaths where id > ? order by id limit ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the Nix database %s: %w", d.path, err)
	}
	defer rows.Close()
	var out []NewPath
	for rows.Next() {
		var p NewPath
		if err := rows.Scan(&p.ID, &p.Path, &p.Deriver); err != nil {
			return nil, fmt.Errorf("reading the Nix database %s: %w", d.path, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the Nix database %s: %w", d.path, err)
	}
	return out, nil
}
