package s3cache_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// toxiBucket starts versitygw behind toxiproxy and opens its bucket
// through the proxy with tight network options; the log collects the
// bucket's WARN lines.
func toxiBucket(t *testing.T, opts s3cache.S3Options) (*s3test.Server, *s3test.Toxi, *s3cache.S3Bucket, *syncBuffer) {
	t.Helper()
	srv := s3test.Start(t, s3test.VersityGW)
	x := s3test.NewToxi(t, srv.Endpoint)
	log := &syncBuffer{}
	opts.Credentials = srv.Credentials()
	opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	return srv, x, openURL(t, x.StoreURL(srv.Bucket), opts), log
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRemote checks that err is a RemoteError whose one-line message
// names the endpoint and says want.
func checkRemote(t *testing.T, err error, endpoint, want string) {
	t.Helper()
	var remote *s3cache.RemoteError
	if !errors.As(err, &remote) {
		t.Fatalf("error %v (%T) is not a RemoteError", err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, endpoint) || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s and saying %q", msg, endpoint, want)
	}
}

// TestS3SilentServer puts toxiproxy's timeout toxic (connections accepted,
// nothing answered) in front of versitygw: every operation is retried
// with a WARN line per retry and then fails with a RemoteError naming
// the endpoint, for requests without a body and uploads alike. The
// attempts are bounded by count, not by RetryFor: a budget of time
// would let a loaded machine spend it all on the first attempt.
func TestS3SilentServer(t *testing.T) {
	t.Parallel()
	_, x, b, log := toxiBucket(t, s3cache.S3Options{StallTimeout: 300 * time.Millisecond, RetryFor: time.Minute, MaxAttempts: 3})
	x.Toxic(t, "silent", "timeout", "downstream", map[string]any{"timeout": 0})
	for name, op := range map[string]func() error{
		"stat": func() error { _, err := b.Stat(t.Context(), "nix-cache-info"); return err },
		"get":  func() error { _, err := b.Get(t.Context(), "x.narinfo"); return err },
		"put": func() error {
			return b.Put(t.Context(), "nar/x.nar", bytes.NewReader(randomBytes(t, 1<<20)), 1<<20, s3cache.PutOptions{})
		},
		"list": func() error { return b.List(t.Context(), "", func(s3cache.ObjectInfo) error { return nil }) },
	} {
		t.Run(name, func(t *testing.T) {
			checkRemote(t, op(), x.Endpoint, "stopped answering: no response in 300ms (gave up after 3 attempts)")
		})
	}
	for _, want := range []string{
		"retrying HEAD nix-cache-info at " + x.Endpoint + ": no response in 300ms (attempt 2)",
		"retrying GET x.narinfo at " + x.Endpoint + ": no response in 300ms (attempt 2)",
		"retrying PUT nar/x.nar at " + x.Endpoint + ": no response in 300ms (attempt 2)",
		"retrying GET ListObjectsV2 at " + x.Endpoint + ": no response in 300ms (attempt 3)",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, log)
		}
	}
}

// TestS3BodyStall stalls a GET's body after its first bytes (toxiproxy's
// slicer toxic with a delay far longer than the stall timeout): reading
// the body fails with a RemoteError naming the endpoint instead of
// hanging, after resuming attempts that each log a WARN line.
func TestS3BodyStall(t *testing.T) {
	t.Parallel()
	_, x, b, log := toxiBucket(t, s3cache.S3Options{StallTimeout: 300 * time.Millisecond, RetryFor: 2 * time.Second})
	data := randomBytes(t, 1<<20)
	if err := b.Put(t.Context(), "nar/big.nar", bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	x.Toxic(t, "stall", "slicer", "downstream", map[string]any{"average_size": 16 << 10, "size_variation": 0, "delay": int64(time.Hour / time.Microsecond)})
	rc, err := b.Get(t.Context(), "nar/big.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	checkRemote(t, err, x.Endpoint, "no data in 300ms")
	if n >= int64(len(data)) {
		t.Errorf("read all %d bytes through a stalling proxy", n)
	}
	if want := "retrying GET nar/big.nar at " + x.Endpoint + ": no data in 300ms after "; !strings.Contains(log.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, log)
	}
}

// TestS3BodyResume cuts every connection after 64 KiB (toxiproxy's
// limit_data toxic): a GET of 1 MiB still reads the whole object, each
// break resumed with a ranged GET of the rest.
func TestS3BodyResume(t *testing.T) {
	t.Parallel()
	_, x, b, log := toxiBucket(t, s3cache.S3Options{StallTimeout: 2 * time.Second, RetryFor: time.Minute, MaxBackoff: 50 * time.Millisecond})
	data := randomBytes(t, 1<<20)
	if err := b.Put(t.Context(), "nar/big.nar", bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	x.Toxic(t, "cut", "limit_data", "downstream", map[string]any{"bytes": 64 << 10})
	rc, err := b.Get(t.Context(), "nar/big.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading through a proxy that cuts connections: %v\n%s", err, log)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if want := "retrying GET nar/big.nar at " + x.Endpoint; !strings.Contains(log.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, log)
	}
}

// TestS3SchemeMismatch points an https endpoint at versitygw's plain
// HTTP port: the error is one line that says so, at once (no retries).
func TestS3SchemeMismatch(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	endpoint := strings.Replace(srv.Endpoint, "http://", "https://", 1)
	log := &syncBuffer{}
	b := openURL(t, "s3://"+srv.Bucket+"?endpoint="+endpoint+"&region="+s3test.Region, s3cache.S3Options{
		Credentials: srv.Credentials(), Logger: slog.New(slog.NewTextHandler(log, nil)),
	})
	_, err := b.Stat(t.Context(), "nix-cache-info")
	checkRemote(t, err, endpoint, "speaks plain HTTP; use http:// in endpoint=")
	if strings.Contains(err.Error(), "tls") || strings.Contains(log.String(), "retrying") {
		t.Errorf("error %q, log %q: want the hint alone, without retries", err, log)
	}
}
