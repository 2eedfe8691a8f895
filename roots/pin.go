package roots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// ErrPinned is returned (wrapped) by Remove for a pinned root.
var ErrPinned = errors.New("root is pinned")

// ErrNoRoot is returned (wrapped) when a root name has no manifest.
var ErrNoRoot = errors.New("no such root")

// Pin marks root name as pinned; it must have a manifest.
func Pin(ctx context.Context, b s3cache.Bucket, name string, now time.Time) error {
	if err := exists(ctx, b, name); err != nil {
		return err
	}
	data := mustJSON(map[string]any{"name": name, "pinned": now.UTC().Truncate(time.Second)})
	if err := b.Put(ctx, PinKey(name), bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("pinning root %s: %w", name, err)
	}
	return nil
}

// Unpin removes root name's pin, if any.
func Unpin(ctx context.Context, b s3cache.Bucket, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := b.Delete(ctx, PinKey(name)); err != nil {
		return fmt.Errorf("unpinning root %s: %w", name, err)
	}
	return nil
}

// Remove deletes every manifest of root name and returns how many objects
// it deleted; the paths become garbage for gc. A pinned root is refused
// (error wrapping ErrPinned): unpin it first.
func Remove(ctx context.Context, b s3cache.Bucket, name string) (int, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	var keys []string
	pinned := false
	err := b.List(ctx, Prefix+name+"/", func(o s3cache.ObjectInfo) error {
		keys = append(keys, o.Key)
		pinned = pinned || o.Key == PinKey(name)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing root %s: %w", name, err)
	}
	if pinned {
		return 0, fmt.Errorf("root %s: %w; unpin it first (nixbucket roots unpin %s)", name, ErrPinned, name)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf("root %s: %w", name, ErrNoRoot)
	}
	if err := b.Delete(ctx, keys...); err != nil {
		return 0, fmt.Errorf("removing root %s: %w", name, err)
	}
	return len(keys), nil
}

func exists(ctx context.Context, b s3cache.Bucket, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	found := false
	errStop := errors.New("stop")
	err := b.List(ctx, Prefix+name+"/", func(o s3cache.ObjectInfo) error {
		if _, pinned, err := ParseKey(o.Key); err == nil && !pinned {
			found = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("listing root %s: %w", name, err)
	}
	if !found {
		return fmt.Errorf("root %s has no manifest: %w", name, ErrNoRoot)
	}
	return nil
}
