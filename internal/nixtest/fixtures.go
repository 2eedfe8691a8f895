package nixtest

import (
	"fmt"
	"testing"
)

// SampleExpr is a Nix expression of test store paths, no nixpkgs needed.
// Arguments: n (DAG size) and salt (to get paths no other test built).
// Attributes:
//
//	dag      a join over n builtins.toFile paths; path i refers to i-1, i/2, i/3
//	lib      an input-addressed library with a few files
//	multi    a derivation with outputs out, dev and doc; dev refers to out
//	app      refers to lib, multi.dev and a toFile path; has a self-reference
//	unbuilt  a derivation nobody builds (its .drv is valid, its output not)
//	blob     12 MiB of random bytes and a small file (multipart uploads)
//	all      a join of everything above but unbuilt
const SampleExpr = `{ n ? 2000, salt ? "" }:
let
  sys = builtins.currentSystem;
  mkDrv = name: script: extra: derivation ({
    inherit name;
    system = sys;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    SALT = salt;
    args = [ "-c" script ];
  } // extra);
  nodes = builtins.listToAttrs (builtins.genList (i: { name = toString i; value = mk i; }) n);
  node = i: nodes.${toString i};
  mk = i: builtins.toFile "dag${salt}-${toString i}" (
    "node ${toString i}\n"
    + (if i > 0 then "${node (i - 1)}\n" else "")
    + (if i > 3 then "${node (i / 2)}\n${node (i / 3)}\n" else ""));
  note = builtins.toFile "note${salt}" "a note\n";
in rec {
  dag = mkDrv "dag" "mkdir $out; ln -s ${node (n - 1)} $out/top" { };
  lib = mkDrv "lib" "mkdir -p $out/lib; echo libfoo > $out/lib/libfoo.so; chmod +x $out/lib/libfoo.so" { };
  multi = mkDrv "multi" ''
    mkdir -p $out/bin $dev/include $doc
    echo '#!/bin/sh' > $out/bin/multi; chmod +x $out/bin/multi
    echo "bin is $out/bin/multi" > $dev/include/multi.h
    echo docs > $doc/README
  '' { outputs = [ "out" "dev" "doc" ]; };
  app = mkDrv "app" ''
    mkdir -p $out/bin
    echo "${lib}/lib/libfoo.so ${multi.dev}/include ${note}" > $out/deps
    echo "self $out" > $out/self
  '' { };
  unbuilt = mkDrv "unbuilt" "echo ${lib} > $out" { };
  blob = mkDrv "blob" "mkdir $out; head -c 12582912 /dev/urandom > $out/blob; echo small > $out/small" { };
  all = mkDrv "all" "mkdir $out; ln -s ${dag} $out/dag; ln -s ${app} $out/app; ln -s ${multi.doc} $out/doc" { };
}
`

// Sample writes SampleExpr with the given DAG size and salt to a temporary
// file and returns its path, ready for Build and Instantiate.
func Sample(t testing.TB, n int, salt string) string {
	t.Helper()
	return WriteExpr(t, fmt.Sprintf("import (%s) { n = %d; salt = %q; }", WriteExpr(t, SampleExpr), n, salt))
}
