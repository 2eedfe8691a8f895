package s3cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// narinfoText is a narinfo as Nix writes it.
const narinfoText = "StorePath: /nix/store/0f5ld286vw0q3rz0hh36gk47iv86m095-hello\nURL: nar/1.nar.xz\nCompression: xz\n" +
	"FileHash: sha256:0000000000000000000000000000000000000000000000000000\nFileSize: 4\n" +
	"NarHash: sha256:0000000000000000000000000000000000000000000000000000\nNarSize: 8\nReferences: \n"

// TestDecodeContentEncoding stores narinfos, a listing and a log with each
// Content-Encoding on a real MinIO (PutObject with ContentEncoding, as
// niks3 and Nix's narinfo-compression do) and compressed narinfo files in
// a file:// cache, and reads them back decoded with Get, GetWithInfo and
// GetRange; a NAR is never decoded.
func TestDecodeContentEncoding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	s3b := srv.Open(t, srv.Bucket)
	fb, dir := newFileBucket(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	for i, coding := range s3test.Codings {
		hash := strings.Repeat(string("abcd"[i]), 32)
		enc := s3test.Encode(t, coding, []byte(narinfoText))
		for _, obj := range []struct{ key, text string }{
			{hash + ".narinfo", narinfoText},
			{hash + ".ls", `{"version":1,"root":{"type":"regular","size":8}}`},
			{"log/" + hash + "-hello.drv", "building hello\n"},
		} {
			data := s3test.Encode(t, coding, []byte(obj.text))
			if err := s3b.Put(ctx, obj.key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentEncoding: coding}); err != nil {
				t.Fatal(err)
			}
			t.Run("s3/"+coding+"/"+obj.key, func(t *testing.T) { checkDecoded(t, s3b, obj.key, obj.text, coding) })
		}
		// A file:// cache has no headers: the narinfo's first bytes tell.
		key := hash + ".narinfo"
		if err := os.WriteFile(filepath.Join(dir, key), enc, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run("file/"+coding, func(t *testing.T) { checkDecoded(t, fb, key, narinfoText, coding) })
	}

	t.Run("nar not decoded", func(t *testing.T) {
		data := s3test.Encode(t, "gzip", []byte("nar bytes"))
		if err := s3b.Put(ctx, "nar/x.nar", bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentEncoding: "gzip"}); err != nil {
			t.Fatal(err)
		}
		got, err := s3cache.ReadSmall(ctx, s3b, "nar/x.nar", 1<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get nar/x.nar = %q, %v; want the stored bytes", got, err)
		}
	})

	t.Run("plain file narinfo", func(t *testing.T) {
		key := strings.Repeat("f", 32) + ".narinfo"
		if err := os.WriteFile(filepath.Join(dir, key), []byte(narinfoText), 0o644); err != nil {
			t.Fatal(err)
		}
		checkDecoded(t, fb, key, narinfoText, "")
	})

	for _, tc := range []struct {
		name, coding string
		data         []byte
		want         string
	}{
		// A decompression bomb: 9 MiB of zeros in a few KiB.
		{"bomb", "zstd", s3test.Encode(t, "zstd", make([]byte, 9<<20)), "more than 8388608 bytes"},
		{"unsupported", "lz4", []byte("StorePath: x"), `unsupported coding "lz4"`},
		{"corrupt", "xz", []byte("not xz at all"), "decoding Content-Encoding xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := strings.Repeat("g", 31) + string("0123"[len(tc.name)%4]) + ".narinfo"
			if err := s3b.Put(ctx, key, bytes.NewReader(tc.data), int64(len(tc.data)), s3cache.PutOptions{ContentEncoding: tc.coding}); err != nil {
				t.Fatal(err)
			}
			_, err := s3cache.ReadSmall(ctx, s3b, key, 1<<30)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("Get = %v, want one line saying %q", err, tc.want)
			}
			if tc.name == "bomb" && !errors.Is(err, s3cache.ErrTooLarge) {
				t.Errorf("Get = %v, want ErrTooLarge", err)
			}
		})
	}
}

// checkDecoded checks that key in b, stored with coding ("" for none),
// reads as text with every way of reading it.
func checkDecoded(t *testing.T, b s3cache.Bucket, key, text, coding string) {
	t.Helper()
	ctx := context.Background()
	info, err := b.Stat(ctx, key)
	if err != nil || info.ContentEncoding != coding {
		t.Errorf("Stat = %+v, %v; want ContentEncoding %q", info, err, coding)
	}
	got, err := s3cache.ReadSmall(ctx, b, key, 1<<20)
	if err != nil || string(got) != text {
		t.Errorf("Get = %q, %v; want %q", got, err, text)
	}
	rc, info, err := s3cache.GetWithInfo(ctx, b, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if string(got) != text || info.Size != int64(len(text)) || info.ContentEncoding != "" {
		t.Errorf("GetWithInfo = %q, %+v; want %q, Size %d, no ContentEncoding", got, info, text, len(text))
	}
	rc, info, err = s3cache.GetRange(ctx, b, key, 5, 6)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if string(got) != text[5:11] || info.Size != int64(len(text)) {
		t.Errorf("GetRange(5, 6) = %q, Size %d; want %q, Size %d", got, info.Size, text[5:11], len(text))
	}
}

// TestNarinfoCompression writes narinfos through a URL with
// narinfo-compression on a real MinIO: stored with that Content-Encoding
// and compressed, read back as they were written; other keys are stored
// as they are.
func TestNarinfoCompression(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	text := strings.Repeat(narinfoText, 20) // compressible
	for _, coding := range []string{"zstd", "br", "gzip"} {
		t.Run(coding, func(t *testing.T) {
			b := openURL(t, srv.URL+"&narinfo-compression="+coding, srv.Options())
			key := strings.Repeat("a", 32) + ".narinfo"
			if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			info, err := b.Stat(ctx, key)
			if err != nil || info.ContentEncoding != coding || info.Size >= int64(len(text)) {
				t.Errorf("Stat = %+v, %v; want Content-Encoding %s, fewer than %d bytes", info, err, coding, len(text))
			}
			if got, err := s3cache.ReadSmall(ctx, b, key, 1<<20); err != nil || string(got) != text {
				t.Errorf("Get = %d bytes, %v; want the narinfo written", len(got), err)
			}
			if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text))+1, s3cache.PutOptions{}); !errors.Is(err, s3cache.ErrSizeMismatch) {
				t.Errorf("Put of a short narinfo = %v, want ErrSizeMismatch", err)
			}
			nar := "nar/" + strings.Repeat("b", 52) + ".nar"
			if err := b.Put(ctx, nar, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if info, err := b.Stat(ctx, nar); err != nil || info.ContentEncoding != "" || info.Size != int64(len(text)) {
				t.Errorf("Stat %s = %+v, %v; want it stored as it is", nar, info, err)
			}
		})
	}
}
