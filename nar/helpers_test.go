package nar_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/nar"
)

// nixDump returns `nix-store --dump path`, the oracle.
func nixDump(t testing.TB, path string) []byte {
	t.Helper()
	nixtest.Require(t)
	out, err := nixtest.Output(context.Background(), nil, "nix-store", "--dump", path)
	if err != nil {
		t.Fatalf("nix-store --dump %s: %v", path, err)
	}
	return out
}

// nixDumpSum streams `nix-store --dump path` through SHA-256 and returns the
// hex digest and the size, without holding the NAR.
func nixDumpSum(t testing.TB, path string) (string, int64) {
	t.Helper()
	nixtest.Require(t)
	cmd := exec.Command("nix-store", "--dump", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("nix-store --dump %s: %v: %s", path, err, stderr.String())
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// dump runs nar.Dump into memory and checks that the count it returns is
// the number of bytes written.
func dump(t testing.TB, path string) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := nar.Dump(context.Background(), &buf, path)
	if err != nil {
		t.Fatalf("Dump(%s): %v", path, err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("Dump(%s) returned %d, wrote %d bytes", path, n, buf.Len())
	}
	return buf.Bytes()
}

// firstDiff describes where two NARs first differ.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-32)
	return "first difference at byte " + strconv.Itoa(i) + " of " + strconv.Itoa(len(got)) +
		" (want " + strconv.Itoa(len(want)) + ")\n got: " +
		strings.TrimSpace(hex.Dump(got[lo:min(len(got), i+32)])) + "\nwant: " +
		strings.TrimSpace(hex.Dump(want[lo:min(len(want), i+32)]))
}

// pathInfo is what `nix path-info --json` says of a path.
type pathInfo struct {
	NarHash string `json:"narHash"`
	NarSize uint64 `json:"narSize"`
}

// nixPathInfo returns the NarHash and NarSize Nix records for a store path.
// Nix 2.8 prints a list, newer Nix an object keyed by path.
func nixPathInfo(t testing.TB, path string) (*nixhash.Hash, uint64) {
	t.Helper()
	out := nixtest.Run(t, "nix", "--extra-experimental-features", "nix-command", "path-info", "--json", path)
	var list []pathInfo
	var info pathInfo
	if err := json.Unmarshal([]byte(out), &list); err == nil && len(list) == 1 {
		info = list[0]
	} else {
		var m map[string]pathInfo
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("parsing nix path-info --json: %v: %s", err, out)
		}
		var ok bool
		if info, ok = m[path]; !ok {
			t.Fatalf("nix path-info --json has no %s: %s", path, out)
		}
	}
	h, err := nixhash.ParseAny(info.NarHash, nil)
	if err != nil {
		t.Fatalf("parsing narHash %q: %v", info.NarHash, err)
	}
	return &h.Hash, info.NarSize
}

// treeScript makes a tree with every case the NAR format distinguishes.
// Nix canonicalises permissions in the store: 0555 if owner-executable,
// else 0444.
const treeScript = `set -e
mkdir $out
cd $out
: > empty
mkdir emptydir
printf 'hello\n' > plain
printf '#!/bin/sh\necho hi\n' > exe
chmod 0755 exe
for i in 0 1 2 3 4 5 6 7 8 9; do printf 0123456789 | head -c $i > pad$i; done
ln -s plain rel
ln -s ../../etc/passwd relup
ln -s /etc/hostname abs
ln -s emptydir todir
ln -s does/not/exist dangling
ln -s "$(head -c 4095 /dev/zero | tr '\0' y)" longtarget
ln plain hardlink
mkdir order
for n in B a-b a.b a0 Z _ '~' 0 -x aa 'a b' '.hidden'; do printf '%s' "$n" > "order/$n"; done
mkdir order/a
printf child > order/a/child
printf space > 'with space'
printf nfc > "$(printf 'caf\303\251')"
printf raw > "$(printf 'raw\377byte')"
printf nl > "$(printf 'new\nline')"
printf long > "$(head -c 255 /dev/zero | tr '\0' x)"
d=deep
i=0
while [ $i -lt 40 ]; do d=$d/l$i; i=$((i+1)); done
mkdir -p $d
printf bottom > $d/file
ln -s ../exe $d/link
mkdir bin
cp exe bin/tool
ln -s tool bin/alias`

// buildAll builds one derivation per script, named nar-test-<key>, in one
// nix-build, and returns their output paths by key.
func buildAll(t testing.TB, scripts map[string]string) map[string]string {
	t.Helper()
	var b strings.Builder
	b.WriteString("{\n")
	for name, script := range scripts {
		b.WriteString("  " + name + " = " + nixtest.Derivation("nar-test-"+name, script) + ";\n")
	}
	b.WriteString("}\n")
	out := nixtest.Build(t, nixtest.WriteExpr(t, b.String()))
	paths := map[string]string{}
	for name := range scripts {
		for _, p := range out {
			if strings.HasSuffix(p, "-nar-test-"+name) {
				paths[name] = p
			}
		}
		if paths[name] == "" {
			t.Fatalf("nix-build printed no output for %s: %q", name, out)
		}
	}
	return paths
}
