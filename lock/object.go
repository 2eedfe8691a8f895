package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Prefix is the key prefix of lock objects, the cache layout's locks/.
const Prefix = layout.LocksDir

// Lock kinds.
const (
	// Shared is taken by pushes; many may be held at once.
	Shared = "shared"
	// Exclusive is taken by gc; it excludes every other lock.
	Exclusive = "exclusive"
	// Waiting marks an exclusive Acquire that waits for shared locks to
	// go; new shared locks wait for it in turn.
	Waiting = "waiting"
)

// Info describes a lock object.
type Info struct {
	// Kind is Shared, Exclusive or Waiting.
	Kind string `json:"kind"`
	// ID is the lock's id: its holder's random id, a dash, and a random
	// suffix that changes at each refresh.
	ID string `json:"id"`
	// Host and PID name the holding process.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Command is what holds the lock ("push", "gc").
	Command string `json:"command,omitempty"`
	// Created is when the lock was first written (the server's clock).
	Created time.Time `json:"created"`
	// Space is the holder's process space (kernel boot id and PID
	// namespace): a holder in ours whose PID is gone, or now names a
	// process started at another time, is dead.
	Space string `json:"space,omitempty"`
	// PIDStart is when the holding process started, in clock ticks after
	// boot (field 22 of /proc/PID/stat); 0 when unknown. With Space it
	// tells the holder from a later process given the same PID.
	PIDStart uint64 `json:"pid_start,omitempty"`
	// Key is the object's key.
	Key string `json:"-"`
	// LastModified is when the object was last written (the server's clock).
	LastModified time.Time `json:"-"`
}

// Stale reports whether the lock was last written more than staleAfter
// before now.
func (i Info) Stale(now time.Time, staleAfter time.Duration) bool {
	return now.Sub(i.LastModified) > staleAfter
}

// conflicts reports whether a lock of kind may not be taken beside other.
// Before writing its object, a shared lock also yields to a waiting
// exclusive one (writer preference); once written, only held locks count.
func conflicts(kind, other string, written bool) bool {
	switch {
	case other == Waiting:
		return kind == Shared && !written
	case kind == Waiting:
		return false
	}
	return kind == Exclusive || other == Exclusive
}

// parseKey returns the kind and id of a lock key, ok false for other keys.
func parseKey(key string) (kind, id string, ok bool) {
	name, found := strings.CutPrefix(key, Prefix)
	if !found {
		return "", "", false
	}
	name, found = strings.CutSuffix(name, ".json")
	if !found {
		return "", "", false
	}
	kind, id, found = strings.Cut(name, "-")
	if !found || id == "" || (kind != Shared && kind != Exclusive && kind != Waiting) {
		return "", "", false
	}
	return kind, id, true
}

// renamed returns i under a new id and key, of holder.
func (i Info) renamed(holder string) Info {
	i.ID = holder + "-" + randomID()
	i.Key = Prefix + i.Kind + "-" + i.ID + ".json"
	return i
}

// List returns the lock objects in b, from one LIST, without reading them
// (Host, PID, Command and Created are empty).
func List(ctx context.Context, b s3cache.Bucket) ([]Info, error) {
	var out []Info
	err := b.List(ctx, Prefix, func(o s3cache.ObjectInfo) error {
		if kind, id, ok := parseKey(o.Key); ok {
			out = append(out, Info{Kind: kind, ID: id, Key: o.Key, LastModified: o.LastModified})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing locks: %w", err)
	}
	return out, nil
}

// Read fills in i's body fields (host, pid, command, created) with one GET.
func Read(ctx context.Context, b s3cache.Bucket, i Info) (Info, error) {
	data, err := s3cache.ReadSmall(ctx, b, i.Key, 1<<16)
	if err != nil {
		return i, fmt.Errorf("reading lock %s: %w", i.Key, err)
	}
	var body Info
	if err := json.Unmarshal(data, &body); err != nil {
		return i, fmt.Errorf("parsing lock %s: %w", i.Key, err)
	}
	i.Host, i.PID, i.Command, i.Created, i.Space, i.PIDStart = body.Host, body.PID, body.Command, body.Created, body.Space, body.PIDStart
	return i, nil
}

// Describe is a one-line description of a lock for messages, reading its
// body when it can.
func Describe(ctx context.Context, b s3cache.Bucket, i Info) string {
	full, err := Read(ctx, b, i)
	if err != nil {
		return fmt.Sprintf("%s (last written %s)", i.Key, i.LastModified.UTC().Format(time.RFC3339))
	}
	cmd := full.Command
	if cmd == "" {
		cmd = full.Kind
	}
	return fmt.Sprintf("%s lock %s by %s on %s pid %d since %s (last written %s)", full.Kind, i.Key, cmd, full.Host, full.PID,
		full.Created.UTC().Format(time.RFC3339), i.LastModified.UTC().Format(time.RFC3339))
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
