package watch

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/store"
)

// storeScan bounds the paths read from the Nix database at once.
const storeScan = 1000

// storeWatcher queues the paths registered in the local store's database
// after it started (watch-store): it remembers the largest ValidPaths id
// seen, and polls for larger ones. Derivations (.drv) are not queued:
// like a push of ./result, watch-store pushes what builds produce.
type storeWatcher struct {
	db   string
	q    *queue.Queue
	m    *Metrics
	log  *slog.Logger
	last int64
}

// newStoreWatcher starts from the database's newest registration, so that
// the store's existing paths are not queued.
func newStoreWatcher(ctx context.Context, db string, q *queue.Queue, m *Metrics, log *slog.Logger) (*storeWatcher, error) {
	last, err := store.LastID(ctx, db)
	if err != nil {
		return nil, err
	}
	log.Debug("watching the store for new paths", "after_id", last)
	return &storeWatcher{db: db, q: q, m: m, log: log, last: last}, nil
}

// run polls every interval until ctx ends. A failing read or write is
// logged and tried again at the next poll.
func (s *storeWatcher) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.scan(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("watch-store: reading new store paths failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan queues the paths registered since the last scan.
func (s *storeWatcher) scan(ctx context.Context) error {
	for {
		paths, err := store.PathsSince(ctx, s.db, s.last, storeScan)
		if err != nil || len(paths) == 0 {
			return err
		}
		// One Add per deriver, so the queue knows what built each path.
		var order []string
		byDrv := map[string][]string{}
		for _, p := range paths {
			if strings.HasSuffix(p.Path, ".drv") {
				continue
			}
			if _, ok := byDrv[p.Deriver]; !ok {
				order = append(order, p.Deriver)
			}
			byDrv[p.Deriver] = append(byDrv[p.Deriver], p.Path)
		}
		n := 0
		for _, drv := range order {
			if err := s.q.Add(ctx, drv, byDrv[drv]); err != nil {
				return err
			}
			n += len(byDrv[drv])
		}
		s.last = paths[len(paths)-1].ID
		s.m.queued(n)
		if n > 0 {
			s.log.Debug("watch-store: queued new store paths", "paths", n)
		}
		if len(paths) < storeScan {
			return nil
		}
	}
}
