package s3cache

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemBucket is a Bucket in memory, for fast unit tests. It uses only the
// standard library. The zero value is not usable; call NewMemBucket.
type MemBucket struct {
	mu      sync.RWMutex
	objects map[string]memObject
}

type memObject struct {
	data []byte
	info ObjectInfo
}

var (
	_ Bucket     = (*MemBucket)(nil)
	_ InfoGetter = (*MemBucket)(nil)
)

// NewMemBucket returns an empty in-memory bucket.
func NewMemBucket() *MemBucket {
	return &MemBucket{objects: map[string]memObject{}}
}

// Stat implements Bucket.
func (m *MemBucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stating %s: %w", key, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	o, ok := m.objects[key]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("stating %s: %w", key, ErrNotFound)
	}
	return o.info, nil
}

// Get implements Bucket.
func (m *MemBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := m.GetWithInfo(ctx, key)
	return rc, err
}

// GetWithInfo implements InfoGetter.
func (m *MemBucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("getting %s: %w", key, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, ObjectInfo{}, fmt.Errorf("getting %s: %w", key, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.info, nil
}

// Put implements Bucket. It reads the whole object into memory first.
func (m *MemBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if key == "" || strings.HasPrefix(key, "/") {
		return fmt.Errorf("putting %q: %w", key, ErrInvalidKey)
	}
	var buf bytes.Buffer
	src := ctxReader{ctx, r}
	if size >= 0 {
		src = ctxReader{ctx, io.LimitReader(r, size+1)}
	}
	n, err := buf.ReadFrom(src)
	if err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := checkSize(key, size, n); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	sum := md5.Sum(buf.Bytes())
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	o := memObject{data: buf.Bytes(), info: ObjectInfo{
		Key:          key,
		Size:         n,
		LastModified: time.Now().UTC(),
		ETag:         hex.EncodeToString(sum[:]),
		ContentType:  ct,
	}}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = o
	return nil
}

// List implements Bucket.
func (m *MemBucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	m.mu.RLock()
	var infos []ObjectInfo
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, o.info)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Bucket.
func (m *MemBucket) Delete(ctx context.Context, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.objects, k)
	}
	return nil
}
