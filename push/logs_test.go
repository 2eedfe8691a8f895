package push_test

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
)

// logFixture is a closure the cache already has, of paths whose
// derivations have logs in a Nix log directory laid out every way Nix
// reads one.
type logFixture struct {
	dir   string
	graph *closure.Graph
	logs  map[string]string // drv base name: the log text uploaded
	have  string            // the drv whose log the cache has already
}

func fakePath(c, name string) string { return "/nix/store/" + strings.Repeat(c, 32) + "-" + name }

func newLogFixture(t *testing.T, b s3cache.Bucket) *logFixture {
	t.Helper()
	f := &logFixture{dir: t.TempDir(), logs: map[string]string{}}
	write := func(rel string, data []byte) {
		p := filepath.Join(f.dir, "drvs", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plain, bz, flat, none, have := fakePath("1", "plain.drv"), fakePath("2", "bz.drv"), fakePath("3", "flat.drv"), fakePath("4", "none.drv"), fakePath("5", "have.drv")
	base := func(p string) string { return filepath.Base(p) }
	f.logs[base(plain)] = "plain log\n"
	write(base(plain)[:2]+"/"+base(plain)[2:], []byte(f.logs[base(plain)]))
	f.logs[base(bz)] = strings.Repeat("a bzip2 log line\n", 1000)
	write(base(bz)[:2]+"/"+base(bz)[2:]+".bz2", bzip2(t, f.logs[base(bz)]))
	f.logs[base(flat)] = "an old flat log\n"
	write(base(flat)+".bz2", bzip2(t, f.logs[base(flat)]))
	write(base(have), []byte("the cache has this one\n"))
	f.have = base(have)
	putKey(t, b, layout.LogKey(have), "already there")

	var infos []*store.PathInfo
	for _, p := range []struct{ path, drv string }{
		{fakePath("a", "plain"), plain}, {fakePath("b", "plain-dev"), plain}, // two outputs, one log
		{fakePath("c", "bz"), bz}, {fakePath("d", "flat"), flat},
		{fakePath("f", "none"), none}, {fakePath("g", "have"), have}, {fakePath("h", "source"), ""},
	} {
		infos = append(infos, &store.PathInfo{Path: p.path, Deriver: p.drv, NarSize: 8})
		putKey(t, b, layout.NarInfoKeyOf(p.path), "StorePath: "+p.path+"\n")
	}
	g, err := closure.FromInfos(infos)
	if err != nil {
		t.Fatal(err)
	}
	f.graph = g
	return f
}

func bzip2(t *testing.T, text string) []byte {
	t.Helper()
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2: %v", err)
	}
	return out
}

func putKey(t *testing.T, b s3cache.Bucket, key, text string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPushLogsLayouts: a push with Logs uploads, for the paths the cache
// has, the logs of their derivations found plain, .bz2, in drvs/xx/ or
// flat, once per derivation, decompressed and then compressed with
// LogCompression; derivations without a log, paths without a deriver and
// logs the cache has are left.
func TestPushLogsLayouts(t *testing.T) {
	for _, enc := range []string{"", "zstd", "gzip"} {
		t.Run("encoding "+enc, func(t *testing.T) {
			ctx := context.Background()
			b := s3cache.NewMemBucket()
			f := newLogFixture(t, b)
			res, err := push.Push(ctx, b, f.graph, push.Options{Logs: true, LogDir: f.dir, LogCompression: enc})
			if err != nil {
				t.Fatal(err)
			}
			if res.Pushed != 0 || res.Logs != len(f.logs) || res.LogsPresent != 1 || res.LogsFailed != 0 {
				t.Errorf("push: %+v; want 0 paths and %d logs pushed, 1 present", res, len(f.logs))
			}
			var total uint64
			for drv, want := range f.logs {
				key := layout.LogKey(drv)
				info, err := b.Stat(ctx, key)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				total += uint64(info.Size)
				// The memory bucket keeps neither Content-Encoding nor
				// Content-Type (TestPushLogs checks them on MinIO).
				if got := decodeAs(t, enc, readKey(t, b, key)); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			if res.LogBytes != total {
				t.Errorf("LogBytes = %d, the logs are %d bytes", res.LogBytes, total)
			}
			if got := readKey(t, b, layout.LogKey(f.have)); got != "already there" {
				t.Errorf("the log the cache had was replaced: %q", got)
			}
			if _, err := b.Stat(ctx, layout.LogKey(fakePath("4", "none.drv"))); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("a log of a derivation without one: %v", err)
			}
		})
	}
}

// failingLogs refuses every write under log/.
type failingLogs struct{ s3cache.Bucket }

func (f failingLogs) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) error {
	if strings.HasPrefix(key, layout.LogDir) {
		return errors.New("injected failure")
	}
	return f.Bucket.Put(ctx, key, r, size, opts)
}

// TestPushLogsNeverFail: logs that cannot be uploaded or read are counted
// in LogsFailed, and the push succeeds; a log-compression push cannot
// write fails before anything is written.
func TestPushLogsNeverFail(t *testing.T) {
	ctx := context.Background()
	b := s3cache.NewMemBucket()
	f := newLogFixture(t, b)
	res, err := push.Push(ctx, failingLogs{b}, f.graph, push.Options{Logs: true, LogDir: f.dir})
	if err != nil || res.Logs != 0 || res.LogsFailed != len(f.logs) {
		t.Errorf("push with failing log uploads: %+v, %v; want success, %d failed", res, err, len(f.logs))
	}
	// A damaged .bz2 log.
	for drv := range f.logs {
		matches, _ := filepath.Glob(filepath.Join(f.dir, "drvs", "*", drv[2:]+".bz2"))
		for _, m := range matches {
			if err := os.WriteFile(m, []byte("BZh9 not bzip2"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err = push.Push(ctx, b, f.graph, push.Options{Logs: true, LogDir: f.dir})
	if err != nil || res.Logs != 2 || res.LogsFailed != 1 {
		t.Errorf("push with a damaged log: %+v, %v; want success, 2 logs, 1 failed", res, err)
	}
	for _, c := range []string{"xz", "lz4"} {
		if _, err := push.Push(ctx, b, f.graph, push.Options{Logs: true, LogDir: f.dir, LogCompression: c}); err == nil || !strings.Contains(err.Error(), "log-compression="+c) {
			t.Errorf("push with log-compression=%s: %v; want an error naming it", c, err)
		}
	}
}

// readKey reads the object at key.
func readKey(t *testing.T, b s3cache.Bucket, key string) string {
	t.Helper()
	data, err := s3cache.ReadSmall(context.Background(), b, key, s3cache.MaxDecodedSize)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// decodeAs undoes enc.
func decodeAs(t *testing.T, enc, data string) string {
	t.Helper()
	var r io.Reader = strings.NewReader(data)
	switch enc {
	case "zstd":
		d, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = z
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return string(out)
}
