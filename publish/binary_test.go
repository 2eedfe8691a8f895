package publish_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
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

// recorder is a bucket that records the order of completed Puts (and of
// all writes, Deletes included, in ops) and can make a Put fail.
type recorder struct {
	s3cache.Bucket
	mu   sync.Mutex
	puts []string
	ops  []string
	fail func(key string) bool
}

func (r *recorder) Delete(ctx context.Context, keys ...string) error {
	if err := r.Bucket.Delete(ctx, keys...); err != nil {
		return err
	}
	r.mu.Lock()
	for _, k := range keys {
		r.ops = append(r.ops, "delete "+k)
	}
	r.mu.Unlock()
	return nil
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
	r.ops = append(r.ops, "put "+key)
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
	// Each call deleted the old checksum before it wrote the binary.
	var wantOps []string
	for _, target := range targets {
		key := "_releases/v1.2.3/" + target + "/garage"
		wantOps = append(wantOps, "delete "+key+".sha256", "put "+key, "put "+key+".sha256")
	}
	if !slices.Equal(rec.ops, wantOps) {
		t.Errorf("writes\n got %q\nwant %q", rec.ops, wantOps)
	}

	t.Run("failed upload leaves no checksum", func(t *testing.T) {
		rec.fail = func(key string) bool { return strings.HasSuffix(key, "/second") }
		defer func() { rec.fail = nil }()
		d := t.TempDir()
		first, firstData := writeFile(t, d, "first", 100)
		second, _ := writeFile(t, d, "second", 100)
		rec.ops = nil
		res, err := publish.PublishBinaries(ctx, rec, "_releases/", "v9.9.9", targets[0], []publish.Binary{{Path: first}, {Path: second}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want one wrapping context.Canceled", err)
		}
		if len(res) != 0 {
			t.Errorf("result %+v after a failure before any checksum", res)
		}
		dir := "_releases/v9.9.9/" + targets[0] + "/"
		// Checksums are written only once every binary is stored: the
		// first binary stays, whole, without one; the second is absent.
		for _, k := range []string{dir + "second", dir + "second.sha256", dir + "first.sha256"} {
			if _, err := rec.Stat(ctx, k); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("%s after a failed upload: %v, want not found", k, err)
			}
		}
		if got := get(t, rec, dir+"first"); !bytes.Equal(got, firstData) {
			t.Errorf("the binary uploaded before the failure is not whole")
		}
		want := []string{"delete " + dir + "first.sha256", "delete " + dir + "second.sha256", "put " + dir + "first"}
		if !slices.Equal(rec.ops, want) {
			t.Errorf("writes\n got %q\nwant %q", rec.ops, want)
		}
		// Running it again completes the release.
		rec.fail = nil
		res, err = publish.PublishBinaries(ctx, rec, "_releases/", "v9.9.9", targets[0], []publish.Binary{{Path: first}, {Path: second}})
		if err != nil || len(res) != 2 {
			t.Fatalf("re-run: %+v, %v", res, err)
		}
		for _, p := range res {
			checkSum(t, rec, p.Key)
		}
	})

	t.Run("re-publish never leaves an old checksum beside a new binary", func(t *testing.T) {
		d := t.TempDir()
		dir := "_releases/v2.0.0/" + targets[0] + "/"
		key := dir + "garage"
		src, _ := writeFile(t, d, "garage", 5000)
		if _, err := publish.PublishBinaries(ctx, rec, "_releases/", "v2.0.0", targets[0], []publish.Binary{{Path: src}}); err != nil {
			t.Fatal(err)
		}
		oldSum := string(get(t, rec, key+".sha256"))

		// The binary is replaced, then the checksum upload fails.
		src2, data2 := writeFile(t, t.TempDir(), "garage", 6000)
		rec.fail = func(k string) bool { return k == key+".sha256" }
		_, err := publish.PublishBinaries(ctx, rec, "_releases/", "v2.0.0", targets[0], []publish.Binary{{Path: src2}})
		rec.fail = nil
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("error %v, want a failed checksum upload", err)
		}
		if got := get(t, rec, key); !bytes.Equal(got, data2) {
			t.Fatalf("the binary was not replaced")
		}
		if _, err := rec.Stat(ctx, key+".sha256"); !errors.Is(err, s3cache.ErrNotFound) {
			t.Errorf("a checksum is beside the new binary after its upload failed: %v (old one: %q)", err, oldSum)
		}

		// The binary upload fails: the old binary stays, without a checksum.
		if _, err := publish.PublishBinaries(ctx, rec, "_releases/", "v2.0.0", targets[0], []publish.Binary{{Path: src}}); err != nil {
			t.Fatal(err)
		}
		rec.fail = func(k string) bool { return k == key }
		_, err = publish.PublishBinaries(ctx, rec, "_releases/", "v2.0.0", targets[0], []publish.Binary{{Path: src2}})
		rec.fail = nil
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want a failed binary upload", err)
		}
		if _, err := rec.Stat(ctx, key+".sha256"); !errors.Is(err, s3cache.ErrNotFound) {
			t.Errorf("checksum after a failed binary upload: %v, want not found", err)
		}

		// A successful re-publish: the checksum is the new binary's.
		if _, err := publish.PublishBinaries(ctx, rec, "_releases/", "v2.0.0", targets[0], []publish.Binary{{Path: src2}}); err != nil {
			t.Fatal(err)
		}
		if got := string(get(t, rec, key+".sha256")); got == oldSum {
			t.Errorf("the checksum is still the old binary's")
		}
		checkSum(t, rec, key)
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

// checkSum checks with the real sha256sum that the checksum file of key
// matches the binary stored there.
func checkSum(t *testing.T, b s3cache.Bucket, key string) {
	t.Helper()
	dir := t.TempDir()
	name := path.Base(key)
	if err := os.WriteFile(filepath.Join(dir, name), get(t, b, key), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".sha256"), get(t, b, key+".sha256"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", name+".sha256")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != name+": OK" {
		t.Errorf("%s: sha256sum -c: %v: %s", key, err, out)
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want string // "" for accepted, else a word of the error
	}{
		{"v1.2.3", ""},
		{"convert_db", ""},
		{"my build", ""}, // inner spaces are fine
		{"", "empty"},
		{" ", "white space"},
		{"\t\n", "white space"},
		{"\u00a0", "white space"},
		{" v1.0.0", "white space"},
		{"v1.0.0\n", "white space"},
		{"v1.0.0 ", "white space"},
		{".", `"."`},
		{"..", `".."`},
		{"a/b", "slash"},
		{"a\x00b", "control"},
	} {
		err := publish.CheckName("version", tc.s)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckName(%q): %v", tc.s, err)
		case tc.want != "" && (!errors.Is(err, publish.ErrBadName) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckName(%q) = %v, want an ErrBadName with %q", tc.s, err, tc.want)
		}
	}
}

// TestNormalizePrefixCacheLayout refuses a prefix whose first component
// is part of a binary cache's layout: in a bucket shared with a cache, gc
// (or erase) would delete the releases under it.
func TestNormalizePrefixCacheLayout(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"_releases/", true},
		{"releases/nar/", true}, // only the top level is the cache's
		{"narwhal/", true},
		{"nar", false},
		{"nar/", false},
		{"nar/x/", false},
		{"locks/", false},
		{"roots/", false},
		{"stats/", false},
		{"log/", false},
		{"realisations/", false},
		{"gc/", false},
		{"debuginfo/", false},
		{"nix-cache-info", false},
		{"0123456789abcdfghijklmnpqrsvwxyz.narinfo/", false},
		{"x.narinfo", false},
		{"0123456789abcdfghijklmnpqrsvwxyz.ls", false},
	} {
		_, err := publish.NormalizePrefix(tc.prefix)
		switch {
		case tc.ok && err != nil:
			t.Errorf("NormalizePrefix(%q): %v", tc.prefix, err)
		case !tc.ok && (!errors.Is(err, publish.ErrBadName) || !strings.Contains(err.Error(), "cache layout")):
			t.Errorf("NormalizePrefix(%q) = %v, want an ErrBadName naming the cache layout", tc.prefix, err)
		}
		if _, err2 := publish.BinaryKey(tc.prefix, "v1.0.0", "x86_64-unknown-linux-musl", "garage"); (err2 == nil) != tc.ok {
			t.Errorf("BinaryKey under %q: %v", tc.prefix, err2)
		}
	}
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
