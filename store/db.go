package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nixbucket/nixbucket/storepath"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// busyTimeout is how long a query waits on a lock. Readers of a WAL database
// wait only while a connection recovers the WAL index, which is short.
const busyTimeout = 10 * time.Second

// The statements Nix itself runs (src/libstore/local-store.cc), folded so
// that each question is one statement, hence one consistent snapshot.
const (
	// queryPathInfoSQL returns one row per reference (one row with a NULL
	// reference when there is none).
	queryPathInfoSQL = `select v.hash, v.registrationTime, v.deriver, v.narSize, v.ultimate, v.sigs, v.ca, r.path
from ValidPaths v left join Refs f on f.referrer = v.id left join ValidPaths r on r.id = f.reference
where v.path = ?`
	// queryValidPathsSQL takes the paths as one JSON array and returns the
	// valid ones in array order.
	queryValidPathsSQL = `select v.path from json_each(?) j join ValidPaths v on v.path = j.value order by j.key`
	// queryOutputsSQL returns one row per output (one row with NULLs when
	// the derivation has none recorded).
	queryOutputsSQL = `select o.id, o.path from ValidPaths v left join DerivationOutputs o on o.drv = v.id where v.path = ?`
)

// DB reads the store's SQLite database directly, read-only. It is safe for
// concurrent use.
type DB struct {
	dir       string
	path      string
	immutable bool
	db        *sql.DB
	info      *sql.Stmt
	valid     *sql.Stmt
	outputs   *sql.Stmt
}

var _ Store = (*DB)(nil)

// OpenDB opens the Nix database at dbPath (normally DBPath()) read-only, for
// the store directory storeDir (normally storepath.DefaultDir()).
//
// The database is opened with mode=ro: a reader of a WAL database takes no
// lock that stops Nix from writing, and sees what Nix commits. When that is
// impossible (the -wal and -shm files are absent and cannot be created, as
// for a user without write access to the db directory), OpenDB falls back to
// immutable=1, Nix's own read-only mode, and logs a warning: such a reader
// ignores the WAL, so paths registered since the last checkpoint may be
// missing. A missing database is an error wrapping ErrNoStore.
func OpenDB(ctx context.Context, dbPath, storeDir string, opts ...Option) (*DB, error) {
	o := newOptions(opts)
	f, err := os.Open(dbPath)
	if err != nil {
		return nil, notExist(err, "opening the Nix database")
	}
	_ = f.Close()

	d, err := openDB(ctx, dbPath, storeDir, false, o)
	if err == nil {
		o.logger.Debug("opened the Nix database read-only", "db", dbPath)
		return d, nil
	}
	d, err2 := openDB(ctx, dbPath, storeDir, true, o)
	if err2 != nil {
		return nil, err
	}
	o.logger.Warn("opened the Nix database immutable: paths registered since its last checkpoint may be missing",
		"db", dbPath, "err", err)
	return d, nil
}

func openDB(ctx context.Context, dbPath, storeDir string, immutable bool, o options) (*DB, error) {
	db, err := sql.Open("sqlite", readOnlyDSN(dbPath, immutable))
	if err != nil {
		return nil, fmt.Errorf("opening the Nix database %s: %w", dbPath, err)
	}
	db.SetMaxOpenConns(o.conns)
	db.SetMaxIdleConns(o.conns)
	d := &DB{dir: storeDir, path: dbPath, immutable: immutable, db: db}
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&d.info, queryPathInfoSQL}, {&d.valid, queryValidPathsSQL}, {&d.outputs, queryOutputsSQL}} {
		if *s.stmt, err = db.PrepareContext(ctx, s.sql); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("opening the Nix database %s: %w", dbPath, err)
		}
	}
	return d, nil
}

// Dir returns the store directory.
func (d *DB) Dir() string { return d.dir }

// Immutable reports whether the database was opened with immutable=1 (see
// OpenDB), so that recent registrations may be missing.
func (d *DB) Immutable() bool { return d.immutable }

// LogValue describes the store for log/slog.
func (d *DB) LogValue() slog.Value {
	return slog.GroupValue(slog.String("db", d.path), slog.Bool("immutable", d.immutable))
}

// Close closes the database.
func (d *DB) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("closing the Nix database %s: %w", d.path, err)
	}
	return nil
}

// QueryPathInfo returns the info of a valid path.
func (d *DB) QueryPathInfo(ctx context.Context, path string) (*PathInfo, error) {
	if err := storepath.Check(d.dir, path); err != nil {
		return nil, fmt.Errorf("querying path info: %w", err)
	}
	rows, err := d.info.QueryContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("querying path info of %s: %w", path, err)
	}
	defer rows.Close()
	var info *PathInfo
	for rows.Next() {
		var row infoRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("querying path info of %s: %w", path, err)
		}
		if info == nil {
			if info, err = row.info(path); err != nil {
				return nil, fmt.Errorf("querying path info of %s: %w", path, err)
			}
		}
		if row.ref.Valid {
			info.References = append(info.References, row.ref.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying path info of %s: %w", path, err)
	}
	if info == nil {
		return nil, fmt.Errorf("querying path info of %s: %w", path, ErrNotValid)
	}
	slices.Sort(info.References)
	return info, nil
}

// infoRow is one row of a path-info query: the path's ValidPaths columns
// and one of its references (NULL when it has none).
type infoRow struct {
	hash                 string
	regTime              int64
	deriver, sigs, ca    sql.NullString
	ref                  sql.NullString
	narSize, ultimateInt sql.NullInt64
}

// dest lists the scan destinations in the order of the queries' columns.
func (r *infoRow) dest() []any {
	return []any{&r.hash, &r.regTime, &r.deriver, &r.narSize, &r.ultimateInt, &r.sigs, &r.ca, &r.ref}
}

// info makes the PathInfo of path from the row, without references.
func (r *infoRow) info(path string) (*PathInfo, error) {
	h, err := parseNarHash(r.hash)
	if err != nil {
		return nil, err
	}
	info := &PathInfo{
		Path:             path,
		Deriver:          r.deriver.String,
		NarHash:          h,
		NarSize:          uint64(max(r.narSize.Int64, 0)),
		RegistrationTime: time.Unix(r.regTime, 0),
		Ultimate:         r.ultimateInt.Int64 != 0,
		CA:               r.ca.String,
	}
	if sigs := strings.Fields(r.sigs.String); len(sigs) > 0 {
		info.Signatures = sigs
	}
	return info, nil
}

// parseNarHash parses the NAR hash as the database and the daemon record it:
// "sha256:<base16>" or bare base16 (other encodings are accepted too).
func parseNarHash(s string) (*nixhash.Hash, error) {
	algo := nixhash.SHA256
	h, err := nixhash.ParseAny(s, &algo)
	if err != nil {
		return nil, fmt.Errorf("parsing nar hash %q: %w", s, err)
	}
	return &h.Hash, nil
}

// QueryValidPaths returns the valid paths among paths, in input order
// (duplicates kept), with one query; a malformed path is an error wrapping
// storepath.ErrInvalid.
func (d *DB) QueryValidPaths(ctx context.Context, paths []string) ([]string, error) {
	for _, p := range paths {
		if err := storepath.Check(d.dir, p); err != nil {
			return nil, fmt.Errorf("querying valid paths: %w", err)
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	arg, err := json.Marshal(paths)
	if err != nil {
		return nil, fmt.Errorf("querying valid paths: %w", err)
	}
	rows, err := d.valid.QueryContext(ctx, string(arg))
	if err != nil {
		return nil, fmt.Errorf("querying valid paths: %w", err)
	}
	defer rows.Close()
	var valid []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("querying valid paths: %w", err)
		}
		valid = append(valid, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying valid paths: %w", err)
	}
	return valid, nil
}

// QueryDerivationOutputs maps each output of the valid derivation drvPath to
// its path, from the DerivationOutputs table: floating content-addressed
// outputs have no row there.
func (d *DB) QueryDerivationOutputs(ctx context.Context, drvPath string) (map[string]string, error) {
	if err := storepath.Check(d.dir, drvPath); err != nil {
		return nil, fmt.Errorf("querying derivation outputs: %w", err)
	}
	rows, err := d.outputs.QueryContext(ctx, drvPath)
	if err != nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, err)
	}
	defer rows.Close()
	var outs map[string]string
	for rows.Next() {
		var name, path sql.NullString
		if err := rows.Scan(&name, &path); err != nil {
			return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, err)
		}
		if outs == nil {
			outs = map[string]string{}
		}
		if name.Valid && path.Valid {
			outs[name.String] = path.String
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, err)
	}
	if outs == nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, ErrNotValid)
	}
	return outs, nil
}

// readOnlyDSN is the driver's name for the database at dbPath, opened
// read-only and query-only, immutable (no locks, no WAL) if asked.
func readOnlyDSN(dbPath string, immutable bool) string {
	q := url.Values{}
	q.Set("mode", "ro")
	if immutable {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	return (&url.URL{Scheme: "file", OmitHost: true, Path: dbPath, RawQuery: q.Encode()}).String()
}
