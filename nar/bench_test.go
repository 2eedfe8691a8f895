package nar_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/nar"
)

// benchPath returns the tree the benchmarks dump: $NIXBUCKET_BENCH_PATH when
// set, else a store path holding a copy of the Go source tree (about 130 MB
// of NAR in 12,800 files), built with Nix.
func benchPath(b *testing.B) string {
	if p := os.Getenv("NIXBUCKET_BENCH_PATH"); p != "" {
		return p
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	expr := nixtest.Derivation("nar-bench-go-src", "cp -r "+src+" $out")
	return nixtest.Build(b, nixtest.WriteExpr(b, expr))[0]
}

// BenchmarkDump measures Dump alone, to io.Discard.
func BenchmarkDump(b *testing.B) {
	benchDump(b, func() io.Writer { return io.Discard })
}

// BenchmarkDumpHash measures Dump into a Hasher: what the push pipeline
// does before compressing.
func BenchmarkDumpHash(b *testing.B) {
	benchDump(b, func() io.Writer { return nar.NewHasher() })
}

func benchDump(b *testing.B, newWriter func() io.Writer) {
	p := benchPath(b)
	n, err := nar.Dump(context.Background(), io.Discard, p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := nar.Dump(context.Background(), newWriter(), p); err != nil {
			b.Fatal(err)
		}
	}
}
