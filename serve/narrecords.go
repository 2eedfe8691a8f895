package serve

import (
	"sync"
)

// maxNarRecords bounds the NARs a server remembers having received (about
// 200 bytes each); when full it forgets the oldest.
const maxNarRecords = 1 << 16

// narRecord is what the server knows of a NAR it received and stored: its
// SHA-256 (hashed while it streamed to the bucket), its size, and the
// object's ETag then, which tells whether it has been replaced since.
type narRecord struct {
	sha256 [32]byte
	size   int64
	etag   string
}

// narRecords remembers the NARs received, by key, the oldest forgotten
// first.
type narRecords struct {
	mu    sync.Mutex
	max   int
	m     map[string]narRecord
	order []string // keys, oldest first
}

func newNarRecords(max int) *narRecords {
	return &narRecords{max: max, m: map[string]narRecord{}}
}

func (n *narRecords) add(key string, r narRecord) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[key]; !ok {
		n.order = append(n.order, key)
	}
	n.m[key] = r
	for len(n.m) > n.max {
		delete(n.m, n.order[0])
		n.order = n.order[1:]
	}
	if len(n.order) > 2*n.max { // keys dropped by forget
		n.order = compactOrder(n.order, n.m)
	}
}

func (n *narRecords) get(key string) (narRecord, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.m[key]
	return r, ok
}

// forget drops key once a narinfo names it.
func (n *narRecords) forget(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.m, key)
}

func compactOrder(order []string, m map[string]narRecord) []string {
	out := order[:0]
	for _, k := range order {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// keyedMutex serialises the work on one key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
