package lock

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// judge decides which locks are stale: by age on the server's clock, or
// because their holder ran in our process space and is gone.
type judge struct {
	b          s3cache.Bucket
	clock      *Clock
	staleAfter time.Duration
	space      string
	host       string
	dead       map[string]bool // lock keys whose holder is gone
}

// stale reports whether lock o may be ignored. Reading a body it cannot
// read, it assumes the holder alive; a lock that vanished is stale.
func (j *judge) stale(ctx context.Context, o Info) bool {
	after := j.staleAfter
	if o.Kind == Waiting {
		after = min(after, WaitingStaleAfter)
	}
	if o.Stale(j.clock.Now(), after) {
		return true
	}
	if j.space == "" {
		return false
	}
	if j.dead[o.Key] {
		return true
	}
	full, err := Read(ctx, j.b, o)
	dead := errors.Is(err, s3cache.ErrNotFound) || err == nil && j.holderDead(full)
	if dead && err == nil {
		j.dead[o.Key] = true // a dead holder stays dead; a live one may die
	}
	return dead
}

// holderDead reports whether the holder of lock i, which ran on this host
// in our process space, is gone: its PID names no process, or one started
// at another time (the PID was reused). A lock without a start time
// (written by an older nixbucket) is judged by its PID alone, and never
// dead when it names this process.
func (j *judge) holderDead(i Info) bool {
	if i.Space != j.space || i.Host != j.host {
		return false
	}
	if i.PIDStart == 0 {
		return i.PID != os.Getpid() && processGone(i.PID)
	}
	return holderGone(i.PID, i.PIDStart)
}
