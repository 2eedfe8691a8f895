package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// toolchainExpr is a small toolchain: lib, a tool depending on it, a
// derivation depending on the tool that the test never builds, and one
// that fails. salt makes every path new to the store.
func toolchainExpr(salt string) string {
	return `let
  lib = ` + nixtest.Derivation("tc-lib-"+salt, `echo lib > $out`) + `;
  tool = ` + nixtest.Derivation("tc-tool-"+salt, `mkdir $out; echo ${lib} > $out/lib; echo tool > $out/bin`) + `;
  unbuilt = ` + nixtest.Derivation("tc-unbuilt-"+salt, `cat ${tool}/lib > $out`) + `;
  broken = ` + nixtest.Derivation("tc-broken-"+salt, `echo this toolchain does not build >&2; exit 3`) + `;
in { inherit lib tool unbuilt broken; }`
}

// nixOptionFlags turns nixtest.Options into --nix-option flags.
func nixOptionFlags() []string {
	var out []string
	for i := 0; i+2 < len(nixtest.Options); i += 3 {
		out = append(out, "--nix-option", nixtest.Options[i+1]+"="+nixtest.Options[i+2])
	}
	return out
}

// narinfoKeys lists the narinfo keys in b.
func narinfoKeys(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var keys []string
	if err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		if strings.HasSuffix(o.Key, ".narinfo") {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// wantKeys returns the sorted narinfo keys of store paths.
func wantKeys(paths []string) []string {
	keys := make([]string, 0, len(paths))
	for _, p := range paths {
		keys = append(keys, strings.TrimPrefix(p, "/nix/store/")[:32]+".narinfo")
	}
	slices.Sort(keys)
	return keys
}

// newestManifest reads the only manifest of root name.
func newestManifest(t *testing.T, b s3cache.Bucket, name string) *roots.Manifest {
	t.Helper()
	x, err := roots.List(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	r := x.Get(name)
	if r == nil || len(r.Manifests) != 1 || !strings.HasPrefix(r.Manifests[0].Key, "roots/"+name+"/") {
		t.Fatalf("root %s: %+v; want one manifest under roots/%s/", name, r, name)
	}
	m, err := roots.Read(context.Background(), b, r.Manifests[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestToolchainRefresh builds a toolchain expression with the real
// nix-build, pushes it to a real S3 server and has the real Nix substitute
// it; --derivations pushes exactly nix-store -qR --include-outputs of the
// .drv files; a failing build pushes nothing.
func TestToolchainRefresh(t *testing.T) {
	nixtest.Require(t)
	file := nixtest.WriteExpr(t, toolchainExpr(fmt.Sprint(time.Now().UnixNano())))
	srv := s3test.Start(t, s3test.VersityGW)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	key, err := signing.GenerateSecretKey("cli-toolchain-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIXBUCKET_SECRET_KEY", key.Encode())
	nixFlags := nixOptionFlags()
	refresh := func(bucket string, args ...string) (int, string, string) {
		a := append([]string{"toolchain", "refresh", "--cache", srv.StoreURL(bucket), "-f", file}, nixFlags...)
		return lcRun(t, append(a, args...)...)
	}

	t.Run("build", func(t *testing.T) {
		code, out, errOut := refresh(srv.Bucket, "-A", "tool", "--compression", "zstd", "--json")
		if code != 0 {
			t.Fatalf("toolchain refresh: exit %d: %s", code, errOut)
		}
		if !strings.Contains(errOut, "building '/nix/store/") {
			t.Errorf("nix-build's progress was not passed through on stderr:\n%s", errOut)
		}
		var res struct{ Pushed, Paths int }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("--json output %q: %v", out, err)
		}
		tool := nixtest.Build(t, file, "tool")[0] // built already: only evaluates
		closure := nixtest.Lines(t, "nix-store", "-qR", tool)
		if res.Pushed != len(closure) || res.Paths != len(closure) {
			t.Errorf("pushed %d of %d paths, want the %d-path closure", res.Pushed, res.Paths, len(closure))
		}
		b := srv.Open(t, srv.Bucket)
		if got, want := narinfoKeys(t, b), wantKeys(closure); !slices.Equal(got, want) {
			t.Errorf("narinfos in the bucket %v, want the runtime closure %v", got, want)
		}
		m := newestManifest(t, b, "toolchain")
		if !slices.Equal(m.TopLevel, []string{tool}) || len(m.Paths) != len(closure) {
			t.Errorf("manifest: top level %v with %d paths; want [%s] with %d", m.TopLevel, len(m.Paths), tool, len(closure))
		}
		rep, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(key.PublicKey()), Deep: true})
		if err != nil || !rep.OK() {
			t.Fatalf("verify: %v, %+v", err, rep)
		}
		ts := httptest.NewServer(serve.Handler(b, nil))
		defer ts.Close()
		root, err := nixtest.Substitute(t, ts.URL, key.PublicKey().String(), []string{tool})
		if err != nil {
			t.Fatalf("nix copy from the cache: %v", err)
		}
		nixtest.AssertInStore(t, root, closure)
		if data, err := os.ReadFile(root + tool + "/bin"); err != nil || string(data) != "tool\n" {
			t.Errorf("substituted %s/bin = %q, %v", tool, data, err)
		}
	})

	t.Run("derivations", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		drv := nixtest.Instantiate(t, file, "unbuilt")[0]
		out := nixtest.Run(t, "nix-store", "-q", "--outputs", drv)
		code, _, errOut := refresh(bucket, "--derivations", "-A", "unbuilt", "-A", "lib", "--root", "drvs")
		if code != 0 {
			t.Fatalf("toolchain refresh --derivations: exit %d: %s", code, errOut)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Fatalf("--derivations built %s", out)
		}
		want := nixtest.Lines(t, "nix-store", "-qR", "--include-outputs", drv, nixtest.Instantiate(t, file, "lib")[0])
		var outputs int
		for _, p := range want {
			if !strings.HasSuffix(p, ".drv") {
				outputs++
			}
		}
		if outputs == 0 || slices.Contains(want, out) {
			t.Fatalf("the oracle's closure %v should hold the built outputs of lib and tool, not %s", want, out)
		}
		b := srv.Open(t, bucket)
		if got := narinfoKeys(t, b); !slices.Equal(got, wantKeys(want)) {
			t.Errorf("narinfos in the bucket %v, want nix-store -qR --include-outputs %v", got, wantKeys(want))
		}
		if m := newestManifest(t, b, "drvs"); len(m.TopLevel) != 2 || len(m.Paths) != len(want) {
			t.Errorf("manifest: top level %v with %d paths; want 2 .drv with %d", m.TopLevel, len(m.Paths), len(want))
		}
		rep, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
		if err != nil || !rep.OK() {
			t.Fatalf("verify: %v, %+v", err, rep)
		}
	})

	t.Run("failing build", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		code, _, errOut := refresh(bucket, "-A", "broken")
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		if code != exitFailure || !strings.HasPrefix(last, "nixbucket: building "+file+": nix-build failed") {
			t.Fatalf("a failing build: exit %d, last line %q; want exit 1 and one clear line", code, last)
		}
		if !strings.Contains(errOut, "this toolchain does not build") {
			t.Errorf("the builder's log was not passed through:\n%s", errOut)
		}
		n := 0
		if err := srv.Open(t, bucket).List(context.Background(), "", func(s3cache.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
			t.Fatalf("a failing build left %d objects (%v)", n, err)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"--nix-option", "sandbox"}, {"--root", "../x"}, {"stray"}} {
			if code, _, errOut := refresh(srv.Bucket, args...); code != exitUsage {
				t.Errorf("toolchain refresh %v: exit %d (%s), want %d", args, code, errOut, exitUsage)
			}
		}
	})
}

func TestNixOptions(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		ok   bool
	}{
		{nil, nil, true},
		{[]string{"sandbox=false", "substituters="}, []string{"--option", "sandbox", "false", "--option", "substituters", ""}, true},
		{[]string{"extra-experimental-features=nix-command flakes"}, []string{"--option", "extra-experimental-features", "nix-command flakes"}, true},
		{[]string{"a=b=c"}, []string{"--option", "a", "b=c"}, true},
		{[]string{"sandbox"}, nil, false},
		{[]string{"=false"}, nil, false},
	} {
		got, err := nixOptions(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("nixOptions(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
