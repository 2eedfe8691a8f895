package redact_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/redact"
)

// TestWriter writes text with a key in it cut into pieces of every size —
// so that the key straddles writes — and checks that the writer under it
// gets exactly the redacted text, one line at a time.
func TestWriter(t *testing.T) {
	t.Parallel()
	text, _, _ := testKey(t)
	in := "nixbucket: " + text + " does not exist\n" +
		"pushing 3/5 paths\r" + "pushing 5/5 paths\r" +
		`{"paths":["/nix/store/x","` + text + `"]}` + "\n" +
		"unfinished " + text
	want := redact.String(in)
	if strings.Contains(want, text) {
		t.Fatalf("String(%q) keeps the key", in)
	}
	for size := 1; size <= len(in); size++ {
		var under recordingWriter
		w := redact.NewWriter(&under, nil)
		for p := in; p != ""; {
			n := min(size, len(p))
			if k, err := w.Write([]byte(p[:n])); k != n || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
			}
			p = p[n:]
		}
		if strings.Contains(under.String(), "unfinished") {
			t.Fatalf("size %d: the unfinished line was written before Flush", size)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := under.String(); got != want {
			t.Fatalf("size %d: wrote %q, want %q", size, got, want)
		}
		for _, wr := range under.writes[:len(under.writes)-1] {
			if !strings.HasSuffix(wr, "\n") && !strings.HasSuffix(wr, "\r") {
				t.Fatalf("size %d: a write %q does not end a line", size, wr)
			}
		}
	}
}

// TestWriterLongLine writes one JSON document far longer than a Writer
// holds, with keys all along it, in 4 KiB writes (as a bufio.Writer does),
// and checks that no key survives and the rest is intact.
func TestWriterLongLine(t *testing.T) {
	t.Parallel()
	text, _, _ := testKey(t)
	var list []string
	for i := range 5000 {
		list = append(list, fmt.Sprintf("/nix/store/%032d-p", i), text)
	}
	doc, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	doc = append(doc, '\n')
	var under recordingWriter
	w := redact.NewWriter(&under, nil)
	for p := doc; len(p) > 0; {
		n := min(4096, len(p))
		w.Write(p[:n])
		p = p[n:]
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) < 2 {
		t.Errorf("a %d-byte line went out in %d write: the Writer held all of it", len(doc), len(under.writes))
	}
	if got, want := under.String(), redact.String(string(doc)); got != want {
		t.Errorf("wrote %d bytes, not String of the document (%d bytes)", len(got), len(want))
	}
	var back []string
	if err := json.Unmarshal(under.Bytes(), &back); err != nil || len(back) != len(list) {
		t.Fatalf("the redacted document does not parse as the list: %v", err)
	}
	for i, v := range back {
		if i%2 == 0 && v != list[i] || i%2 == 1 && v != "redact-1:"+redact.Mask {
			t.Fatalf("element %d is %q", i, v)
		}
	}
}

// TestWriterConcurrent writes whole lines from several goroutines: none is
// torn or redacted wrongly.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	text, _, _ := testKey(t)
	var under recordingWriter
	w := redact.NewWriter(&under, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(w, "goroutine %d line %d %s\n", g, i, text)
			}
		})
	}
	wg.Wait()
	w.Flush()
	lines := strings.Split(strings.TrimSuffix(under.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, " redact-1:"+redact.Mask) {
			t.Fatalf("line %q", l)
		}
	}
}

// TestWriterUnwrap checks that Unwrap flushes and returns the writer under
// a Writer, and returns other writers as they are.
func TestWriterUnwrap(t *testing.T) {
	t.Parallel()
	var under bytes.Buffer
	w := redact.NewWriter(&under, nil)
	w.Write([]byte("no end"))
	if got := redact.Unwrap(w); got != &under {
		t.Errorf("Unwrap = %T, want the writer under it", got)
	}
	if under.String() != "no end" {
		t.Errorf("Unwrap did not flush: %q", under.String())
	}
	if got := redact.Unwrap(&under); got != &under {
		t.Errorf("Unwrap of a plain writer = %v", got)
	}
}

// TestWriterError checks that a failed write is reported, then and after.
func TestWriterError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	w := redact.NewWriter(failingWriter{boom}, nil)
	if _, err := w.Write([]byte("line\n")); !errors.Is(err, boom) {
		t.Errorf("Write = %v, want %v", err, boom)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, boom) {
		t.Errorf("second Write = %v, want %v", err, boom)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush = %v, want %v", err, boom)
	}
}

// TestHandler logs a key every way slog takes a value — message, string,
// error, Stringer, LogValuer, group, WithAttrs — through the text and JSON
// handlers, and checks that the key is gone and the rest is there.
func TestHandler(t *testing.T) {
	t.Parallel()
	text, body, _ := testKey(t)
	r := redact.New()
	for _, newH := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var out bytes.Buffer
		l := slog.New(redact.NewHandler(newH(&out), r)).With("url", "http://u:hunter2@host/"+text)
		l.WithGroup("g").Info("open "+text,
			"path", text,
			"err", fmt.Errorf("reading %s: %w", text, errors.New("no such file")),
			"stringer", stringer(text),
			"valuer", valuer(text),
			slog.Group("inner", "key", text, "n", 3),
			"count", 7,
		)
		got := out.String()
		if strings.Contains(got, body[:16]) || strings.Contains(got, "hunter2") {
			t.Errorf("the log shows a secret:\n%s", got)
		}
		for _, want := range []string{"open redact-1:" + redact.Mask, "reading redact-1:" + redact.Mask + ": no such file", "u:xxxxx@host", "7", "3"} {
			if !strings.Contains(got, want) {
				t.Errorf("the log lacks %q:\n%s", want, got)
			}
		}
		if !l.Handler().Enabled(context.Background(), slog.LevelInfo) || l.Handler().Enabled(context.Background(), slog.LevelDebug) {
			t.Errorf("Enabled does not follow the handler under it")
		}
	}
}

type stringer string

func (s stringer) String() string { return "stringer " + string(s) }

type valuer string

func (v valuer) LogValue() slog.Value { return slog.StringValue("valuer " + string(v)) }

// recordingWriter keeps every write.
type recordingWriter struct {
	bytes.Buffer
	writes []string
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return w.Buffer.Write(p)
}

func (w *recordingWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// BenchmarkWriter measures redaction of typical output — path-info lines,
// log lines, a JSON document — by a Redactor that knows two secrets.
func BenchmarkWriter(b *testing.B) {
	text, _, _ := testKey(b)
	var in bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&in, "/nix/store/%032d-hello-2.12.1\tsha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\n", i)
		fmt.Fprintf(&in, "time=2026-12-04T19:00:00Z level=INFO msg=pushing paths=%d/2000 nar=\"12 MiB/40 MiB\" url=s3://b?endpoint=http://127.0.0.1:9000\n", i)
	}
	fmt.Fprintf(&in, `{"paths":["/nix/store/x","%s"]}`+"\n", text)
	r := redact.New(text, awsSecret)
	b.SetBytes(int64(in.Len()))
	for b.Loop() {
		w := redact.NewWriter(io.Discard, r)
		w.Write(in.Bytes())
		w.Flush()
	}
}
