package publish_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/publish"
	"github.com/nixbucket/nixbucket/s3cache"
)

// targets are the seed's four release targets.
var targets = []string{
	"x86_64-unknown-linux-musl",
	"i686-unknown-linux-musl",
	"aarch64-unknown-linux-musl",
	"armv6l-unknown-linux-musleabihf",
}

// recorder is a bucket that records the order of completed Puts and can
// make a Put fail.
type recorder struct {
	s3cache.Bucket
	mu   sync.Mutex
	puts []string
	fail func(key string) bool
}

func (r *recorder) Put(ctx context.Context, key string, rd io.Reader, size int64, opts s3cache.PutOptions) error {
	if r.fail != nil && r.fail(key) {
		cctx, cancel := context.WithCancel(ctx)
		cancel() // a real upload, interrupted
		ctx = cctx
	}
	if err := r.Bucket.Put(ctx, key, rd, size, opts); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, key)
	r.mu.Unlock()
	return nil
}

func writeFile(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// TestPublishBinariesS3 publishes a binary for each of the four targets to
// a real S3 server, then reads back each one and checks its checksum file
// with the real sha256sum.
func TestPublishBinariesS3(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	ctx := context.Background()
	rec := &recorder{Bucket: srv.Open(t, srv.Bucket)}
	dir := t.TempDir()
	for i, target := range targets {
		src, data := writeFile(t, t.TempDir(), "garage", 1000+i*4099)
		res, err := publish.PublishBinaries(ctx, rec, publish.DefaultPrefix, "v1.2.3", target, []publish.Binary{{Path: src}})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		key := "_releases/v1.2.3/" + target + "/garage"
		if len(res) != 1 || res[0].Key != key || res[0].ChecksumKey != key+".sha256" || res[0].Size != int64(len(data)) {
			t.Fatalf("%s: result %+v", target, res)
		}
		got := get(t, rec, key)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: stored binary differs from the input", target)
		}
		info, err := rec.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.ContentType != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q", key, info.ContentType)
		}
		sinfo, err := rec.Stat(ctx, key+".sha256")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sinfo.ContentType, "text/plain") {
			t.Errorf("%s.sha256: Content-Type %q", key, sinfo.ContentType)
		}
		// sha256sum -c is the oracle for the checksum file's format and value.
		sub := filepath.Join(dir, target)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "garage"), got, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "garage.sha256"), get(t, rec, key+".sha256"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sha256sum", "--strict", "-c", "garage.sha256")
		cmd.Dir = sub
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "garage: OK" {
			t.Errorf("%s: sha256sum -c: %v: %s", target, err, out)
		}
	}
	// Every checksum was written after its binary.
	for i, k := range rec.puts {
		if strings.HasSuffix(k, ".sha256") && (i == 0 || rec.puts[i-1] != strings.TrimSuffix(k, ".sha256")) {
			t.Errorf("put order %q: %s not right after its binary", rec.puts, k)
		}
	}
	if len(rec.puts) != 2*len(targets) {
		t.Errorf("%d puts, want %d", len(rec.puts), 2*len(targets))
	}

	t.Run("failed upload leaves no checksum", func(t *testing.T) {
		rec.fail = func(key string) bool { return strings.HasSuffix(key, "/second") }
		defer func() { rec.fail = nil }()
		d := t.TempDir()
		first, _ := writeFile(t, d, "first", 100)
		second, _ := writeFile(t, d, "second", 100)
		_, err := publish.PublishBinaries(ctx, rec, "_releases/", "v9.9.9", targets[0], []publish.Binary{{Path: first}, {Path: second}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want one wrapping context.Canceled", err)
		}
		for _, k := range []string{"_releases/v9.9.9/" + targets[0] + "/second", "_releases/v9.9.9/" + targets[0] + "/second.sha256"} {
			if _, err := rec.Stat(ctx, k); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("%s after a failed upload: %v, want not found", k, err)
			}
		}
		if _, err := rec.Stat(ctx, "_releases/v9.9.9/"+targets[0]+"/first.sha256"); err != nil {
			t.Errorf("the file before the failure is not complete: %v", err)
		}
	})

	t.Run("bad input publishes nothing", func(t *testing.T) {
		d := t.TempDir()
		ok, _ := writeFile(t, d, "ok", 10)
		for _, tc := range []struct {
			name           string
			prefix, v, tgt string
			files          []publish.Binary
			wantErr        error
		}{
			{"missing file", "_releases/", "v0.0.1", targets[0], []publish.Binary{{Path: ok}, {Path: filepath.Join(d, "missing")}}, publish.ErrNoFile},
			{"directory", "_releases/", "v0.0.1", targets[0], []publish.Binary{{Path: ok}, {Path: d}}, publish.ErrNoFile},
			{"empty target", "_releases/", "v0.0.1", "", []publish.Binary{{Path: ok}}, publish.ErrBadName},
			{"empty version", "_releases/", "", targets[0], []publish.Binary{{Path: ok}}, publish.ErrBadName},
			{"slash in version", "_releases/", "v1/2", targets[0], []publish.Binary{{Path: ok}}, publish.ErrBadName},
			{"dot-dot target", "_releases/", "v0.0.1", "..", []publish.Binary{{Path: ok}}, publish.ErrBadName},
			{"absolute prefix", "/abs/", "v0.0.1", targets[0], []publish.Binary{{Path: ok}}, publish.ErrBadName},
			{"checksum name", "_releases/", "v0.0.1", targets[0], []publish.Binary{{Path: ok, Name: "x.sha256"}}, publish.ErrBadName},
			{"no files", "_releases/", "v0.0.1", targets[0], nil, publish.ErrBadName},
		} {
			_, err := publish.PublishBinaries(ctx, rec, tc.prefix, tc.v, tc.tgt, tc.files)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		var n int
		if err := rec.List(ctx, "_releases/v0.0.1/", func(s3cache.ObjectInfo) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d objects published by rejected calls", n)
		}
	})
}

func get(t *testing.T, b s3cache.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzParseChecksum(f *testing.F) {
	for _, s := range []string{
		strings.Repeat("ab", 32) + "  garage\n",
		strings.Repeat("AB", 32) + " *garage",
		strings.Repeat("ab", 32) + " garage",
		"", "x  y", strings.Repeat("g", 64) + "  z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sum, ok := publish.ParseChecksum(s)
		if !ok {
			if sum != "" {
				t.Fatalf("ParseChecksum(%q) = %q, false", s, sum)
			}
			return
		}
		if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
			t.Fatalf("ParseChecksum(%q) = %q: not lower-case hex", s, sum)
		}
		if !strings.EqualFold(s[:64], sum) {
			t.Fatalf("ParseChecksum(%q) = %q: not the first field", s, sum)
		}
	})
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"v1.2.3", "", ".", "..", "a/b", "x\x00", "<img src=x onerror=alert(1)>", "convert_db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := publish.CheckName("version", s)
		key, kerr := publish.BinaryKey("_releases/", s, "t", "f")
		if (err == nil) != (kerr == nil) {
			t.Fatalf("CheckName and BinaryKey disagree on %q: %v, %v", s, err, kerr)
		}
		if err != nil {
			return
		}
		if strings.Count(key, "/") != 3 || key != "_releases/"+s+"/t/f" {
			t.Fatalf("BinaryKey with version %q = %q", s, key)
		}
	})
}
