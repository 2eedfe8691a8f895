package lock

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// waitMark is the waiting object of an exclusive Acquire that waits.
type waitMark struct {
	l       *Lock
	key     string
	body    []byte
	written time.Time // local time of the last write; zero before the first
}

func (l *Lock) newWaitMark() *waitMark {
	info := l.info // before start: nothing changes it
	info.Kind = Waiting
	body, _ := json.MarshalIndent(info, "", "  ") // as Acquire's write did
	return &waitMark{l: l, key: Prefix + Waiting + "-" + info.ID + ".json", body: append(body, '\n')}
}

// keep writes the waiting object when it was never written or is due for
// a rewrite.
func (w *waitMark) keep(ctx context.Context) error {
	now := w.l.opts.Clock()
	if !w.written.IsZero() && now.Sub(w.written) < WaitingStaleAfter/4 {
		return nil
	}
	err := w.l.b.Put(ctx, w.key, strings.NewReader(string(w.body)), int64(len(w.body)), s3cache.PutOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("writing %s: %w", w.key, err)
	}
	w.written = now
	return nil
}

// remove deletes the waiting object, if written, even when the caller's
// ctx is done.
func (w *waitMark) remove() {
	if w == nil || w.written.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(w.l.base, cleanupTimeout)
	defer cancel()
	if err := w.l.b.Delete(ctx, w.key); err != nil {
		w.l.opts.Logger.Warn("removing the waiting mark", "key", w.key, "err", err)
	}
}
