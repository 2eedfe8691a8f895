package store

import (
	"context"
	"database/sql"
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

// LastID is the id of the newest registration in the database at dbPath,
// 0 for an empty one.
func LastID(ctx context.Context, dbPath string) (int64, error) {
	var id int64
	err := follow(ctx, dbPath, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, `select coalesce(max(id), 0) from ValidPaths`).Scan(&id)
	})
	return id, err
}

// PathsSince returns the valid paths of the database at dbPath registered
// after the one with id after, oldest first, at most limit of them.
func PathsSince(ctx context.Context, dbPath string, after int64, limit int) ([]NewPath, error) {
	var out []NewPath
	err := follow(ctx, dbPath, func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, `select id, path, coalesce(deriver, '') from ValidPaths where id > ? order by id limit ?`, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p NewPath
			if err := rows.Scan(&p.ID, &p.Path, &p.Deriver); err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}

// follow runs f on a connection of its own to the database, read-only
// (never immutable). A connection kept open can miss what Nix commits
// later: one opened while no -shm file existed keeps a private WAL index
// (SQLite's read-only WAL mode), blind to other processes' writes. A new
// one per question always sees the latest commit.
func follow(ctx context.Context, dbPath string, f func(*sql.DB) error) error {
	db, err := sql.Open("sqlite", readOnlyDSN(dbPath, false))
	if err != nil {
		return fmt.Errorf("reading the Nix database %s: %w", dbPath, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := f(db); err != nil {
		return fmt.Errorf("reading the Nix database %s: %w", dbPath, err)
	}
	return nil
}
