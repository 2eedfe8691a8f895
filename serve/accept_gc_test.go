package serve_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
)

// TestAcceptYieldsToGC keeps writes going through the server without a
// pause, so that its shared lock is never idle: a gc that waits for the
// cache still gets its exclusive lock, because after LockMaxHold new
// writes take a new shared lock, which yields to the waiting gc, and the
// old one is released as its writes end. Once gc is done, writes go
// through again.
func TestAcceptYieldsToGC(t *testing.T) {
	t.Parallel()
	key, _ := signing.GenerateSecretKey("accept-gc-1")
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.NewBucket(t))
	token, _ := serve.NewToken(testToken)
	settle := 20 * time.Millisecond
	h := serve.New(b, serve.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Push: &serve.PushOptions{
		Token: token, TrustedKeys: signing.NewPublicKeys(key.PublicKey()),
		Lock:        lock.Options{Settle: settle},
		LockIdle:    time.Hour, // never idle: only the maximum hold lets gc in
		LockMaxHold: 300 * time.Millisecond,
	}})
	hs := httptest.NewServer(h)
	defer h.(io.Closer).Close()
	defer hs.Close()

	// One listing PUT after another, each a write that holds the lock.
	put := func() int {
		var hp [20]byte
		rand.Read(hp[:])
		req, _ := http.NewRequest(http.MethodPut, hs.URL+"/"+layout.ListingKey(nixbase32.EncodeToString(hp[:])),
			strings.NewReader(`{"version":1,"root":{"type":"regular","size":1}}`))
		req.SetBasicAuth("ci", testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(); code != http.StatusOK {
		t.Fatalf("first write: %d", code)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code := put()
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}

	ctx := context.Background()
	l, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Settle: settle, Wait: 20 * time.Second})
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("gc's lock while writes never pause: %v (writes: %v)", err, codes)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if code := put(); code != http.StatusOK {
		t.Fatalf("a write after gc: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if codes[http.StatusOK] == 0 {
		t.Errorf("no write went through while gc waited: %v", codes)
	}
	for code, n := range codes {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("%d writes answered %d; want 200, or 503 while gc holds the cache", n, code)
		}
	}
	t.Logf("writes: %v", codes)
}
