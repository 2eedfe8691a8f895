package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// State is an entry's state.
type State string

// The states of an entry.
const (
	Pending  State = "pending"
	InFlight State = "inflight"
	Failed   State = "failed"
)

// busyTimeout is how long a writer waits for another (a hook, the drainer)
// to finish its transaction; they take milliseconds.
const busyTimeout = 10 * time.Second

const schema = `
CREATE TABLE IF NOT EXISTS entries (
	id         INTEGER PRIMARY KEY,
	path       TEXT NOT NULL UNIQUE,
	drv        TEXT NOT NULL DEFAULT '',
	state      TEXT NOT NULL,
	added      INTEGER NOT NULL,
	not_before INTEGER NOT NULL DEFAULT 0,
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, not_before, id);
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);`

// Queue is an open queue file. Its methods are safe for concurrent use,
// and several processes may use one file at once.
type Queue struct {
	db   *sql.DB
	path string
	now  func() time.Time
}

// Open opens the queue at path, creating it (and its directory) if needed.
func Open(ctx context.Context, path string) (*Queue, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate") // a transaction that reads then writes never has to upgrade its lock
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	return &Queue{db: db, path: path, now: time.Now}, nil
}

// Path is the queue's file.
func (q *Queue) Path() string { return q.path }

// Close closes the queue.
func (q *Queue) Close() error { return q.db.Close() }

// Entry is one queued store path.
type Entry struct {
	ID   int64
	Path string
	// Drv is the derivation that built Path, if the hook knew it.
	Drv       string
	State     State
	Added     time.Time
	NotBefore time.Time
	Attempts  int
	LastError string
}

// Add queues paths, built by drv ("" if unknown), in one transaction. A
// path already pending or in flight keeps its entry; a failed one becomes
// pending again, since it was built anew.
func (q *Queue) Add(ctx context.Context, drv string, paths []string) error {
	return q.tx(ctx, func(tx *sql.Tx) error {
		now := q.now().UnixNano()
		for _, p := range paths {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO entries (path, drv, state, added) VALUES (?, ?, 'pending', ?)
				ON CONFLICT (path) DO UPDATE SET
					state = 'pending', not_before = 0, attempts = 0, last_error = '',
					drv = CASE WHEN excluded.drv != '' THEN excluded.drv ELSE drv END
				WHERE state = 'failed'`, p, drv, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// Claim marks up to max pending entries that are due as in flight, oldest
// first, and returns them; none if nothing is due.
func (q *Queue) Claim(ctx context.Context, max int) ([]Entry, error) {
	var out []Entry
	err := q.tx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `
			SELECT id, path, drv, state, added, not_before, attempts, last_error FROM entries
			WHERE state = 'pending' AND not_before <= ? ORDER BY id LIMIT ?`, q.now().UnixNano(), max)
		if err != nil {
			return err
		}
		if out, err = scan(rows); err != nil {
			return err
		}
		for i := range out {
			out[i].State = InFlight
			if _, err := tx.ExecContext(ctx, `UPDATE entries SET state = 'inflight' WHERE id = ?`, out[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Done deletes entries that were pushed, and records now as the time of
// the last success.
func (q *Queue) Done(ctx context.Context, ids []int64) error {
	return q.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE id = ?`, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO meta (name, value) VALUES ('last_success', ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, q.now().UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO meta (name, value) VALUES ('pushed', ?)
			ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`, len(ids))
		return err
	})
}

// Retry makes in-flight entries pending again, due after the given delay,
// counting the attempt and keeping cause as their last error.
func (q *Queue) Retry(ctx context.Context, ids []int64, cause error, after time.Duration) error {
	return q.settle(ctx, ids, Pending, cause, q.now().Add(after))
}

// Fail gives up on entries: they stay failed, with cause as their last
// error, until RetryFailed (`queue retry`) or a new build of their path.
func (q *Queue) Fail(ctx context.Context, ids []int64, cause error) error {
	return q.settle(ctx, ids, Failed, cause, time.Time{})
}

func (q *Queue) settle(ctx context.Context, ids []int64, to State, cause error, notBefore time.Time) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	var nb int64
	if !notBefore.IsZero() {
		nb = notBefore.UnixNano()
	}
	return q.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `
				UPDATE entries SET state = ?, not_before = ?, attempts = attempts + 1, last_error = ?
				WHERE id = ? AND state = 'inflight'`, string(to), nb, msg, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Requeue makes every in-flight entry pending again, due at once, and says
// how many there were: what a drainer that was killed, or stopped mid-batch,
// left claimed. Call it only while holding LockDrainer.
func (q *Queue) Requeue(ctx context.Context) (int, error) {
	return q.exec(ctx, `UPDATE entries SET state = 'pending', not_before = 0 WHERE state = 'inflight'`)
}

// RetryFailed makes every failed entry pending again, due at once, with its
// attempts and error cleared, and says how many there were.
func (q *Queue) RetryFailed(ctx context.Context) (int, error) {
	return q.exec(ctx, `UPDATE entries SET state = 'pending', not_before = 0, attempts = 0, last_error = '' WHERE state = 'failed'`)
}

func (q *Queue) exec(ctx context.Context, stmt string) (int, error) {
	var n int64
	err := q.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, stmt)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Entries lists the entries in state s, oldest first, at most limit of them
// (all for limit <= 0).
func (q *Queue) Entries(ctx context.Context, s State, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := q.db.QueryContext(ctx, `
		SELECT id, path, drv, state, added, not_before, attempts, last_error FROM entries
		WHERE state = ? ORDER BY id LIMIT ?`, string(s), limit)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", q.path, err)
	}
	return scan(rows)
}

// Status is a summary of the queue.
type Status struct {
	Pending  int
	InFlight int
	Failed   int
	// OldestPending is when the oldest pending entry was added (zero if none).
	OldestPending time.Time
	// LastSuccess is when entries were last marked done (zero if never).
	LastSuccess time.Time
	// Pushed counts the entries ever marked done.
	Pushed int64
	// LastError is the error of the entry that failed or was retried last
	// (by id order), "" if none.
	LastError string
}

// Status summarizes the queue.
func (q *Queue) Status(ctx context.Context) (Status, error) {
	var st Status
	rows, err := q.db.QueryContext(ctx, `SELECT state, count(*), min(added) FROM entries GROUP BY state`)
	if err != nil {
		return st, fmt.Errorf("queue %s: %w", q.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		var oldest int64
		if err := rows.Scan(&s, &n, &oldest); err != nil {
			return st, err
		}
		switch State(s) {
		case Pending:
			st.Pending, st.OldestPending = n, time.Unix(0, oldest)
		case InFlight:
			st.InFlight = n
		case Failed:
			st.Failed = n
		}
	}
	if err := rows.Err(); err != nil {
		return st, err
	}
	var last, pushed sql.NullInt64
	_ = q.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'last_success'`).Scan(&last)
	_ = q.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'pushed'`).Scan(&pushed)
	if last.Valid {
		st.LastSuccess = time.Unix(0, last.Int64)
	}
	st.Pushed = pushed.Int64
	err = q.db.QueryRowContext(ctx, `SELECT last_error FROM entries WHERE last_error != '' ORDER BY id DESC LIMIT 1`).Scan(&st.LastError)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, err
	}
	return st, nil
}

func (q *Queue) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue %s: %w", q.path, err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("queue %s: %w", q.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue %s: %w", q.path, err)
	}
	return nil
}

func scan(rows *sql.Rows) ([]Entry, error) {
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var s string
		var added, nb int64
		if err := rows.Scan(&e.ID, &e.Path, &e.Drv, &s, &added, &nb, &e.Attempts, &e.LastError); err != nil {
			return nil, err
		}
		e.State, e.Added = State(s), time.Unix(0, added)
		if nb != 0 {
			e.NotBefore = time.Unix(0, nb)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// String renders an entry for logs: its path, and its error if any.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.LastError != "" {
		fmt.Fprintf(&b, " (%d attempts: %s)", e.Attempts, e.LastError)
	}
	return b.String()
}
