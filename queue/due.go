package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// NextDue says when the earliest pending entry is due: ok is false when
// no entry is pending; a due time not after now means one is due already.
// It only reads (no write lock), so a drainer may poll it often.
func (q *Queue) NextDue(ctx context.Context) (due time.Time, ok bool, err error) {
	var nb sql.NullInt64
	if err := q.db.QueryRowContext(ctx, `SELECT min(not_before) FROM entries WHERE state = 'pending'`).Scan(&nb); err != nil {
		return time.Time{}, false, fmt.Errorf("queue %s: %w", q.path, err)
	}
	if !nb.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(0, nb.Int64), true, nil
}
