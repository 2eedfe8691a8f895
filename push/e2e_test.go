package push_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// hugeExpr is a derivation whose NAR (40 MiB: random runs between
// compressible text) spans three 16 MiB xz chunks, so that an xz push
// compresses it as several streams in parallel. No salt: it is built once
// per machine.
var hugeExpr = nixtest.Derivation("nixbucket-e2e-huge", `mkdir $out
head -c 8388608 /dev/urandom > $out/a-random
yes 'a line of text that compresses well, as much of a store path does' | head -c 12582912 > $out/b-text
head -c 8388608 /dev/urandom > $out/c-random
seq 1 2000000 | head -c 12582912 > $out/d-numbers`)

// e2eSample is the closure every end-to-end push uploads.
type e2eSample struct {
	g     *closure.Graph
	roots []string // the outputs and the .drv, as given to push --include-outputs
	huge  string   // the 40 MiB path
}

// sampleClosure builds the sample: a 2000-path DAG, a multi-output
// derivation, 12 MiB and 40 MiB of data, small paths, and a .drv pushed
// with --include-outputs.
func sampleClosure(t *testing.T) *e2eSample {
	t.Helper()
	f := nixtest.Sample(t, 2000, "push")
	outs := nixtest.Build(t, f, "all", "app", "blob", "multi.dev")
	huge := nixtest.Build(t, nixtest.WriteExpr(t, hugeExpr))[0]
	drvs := nixtest.Instantiate(t, f, "app")
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	roots := append(append(slices.Clone(outs), huge), drvs...)
	g, err := closure.Compute(ctx, s, roots, closure.Options{IncludeOutputs: true})
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() < 2010 || g.Info(huge).NarSize < 40<<20 {
		t.Fatalf("closure of %d paths (huge %d bytes) is too small", g.Len(), g.Info(huge).NarSize)
	}
	return &e2eSample{g: g, roots: roots, huge: huge}
}

// TestPushSubstitute pushes the sample to each real S3 server with each
// compression, half through the library and half through the CLI, then
// has real Nix substitute all of it through serve with signatures
// required; a second push uploads nothing; Nix refuses the paths when it
// trusts another key. An xz push keeps the 40 MiB NAR as several xz
// streams (compressed in parallel), which Nix 2.8 reads.
func TestPushSubstitute(t *testing.T) {
	nixtest.Require(t)
	sample := sampleClosure(t)
	key := newKey(t, "nixbucket-test-1")
	other := newKey(t, "nixbucket-test-1")
	for si, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			for ai, algo := range []string{"xz", "zstd", "none"} {
				// The library on versitygw/xz and minio/zstd; the CLI else.
				cli := ai != si
				how := "lib"
				if cli {
					how = "cli"
				}
				t.Run(algo+"-"+how, func(t *testing.T) {
					t.Parallel()
					pushSubstitute(t, srv, sample, algo, cli, key, other)
				})
			}
		})
	}
}

func pushSubstitute(t *testing.T, srv *s3test.Server, sample *e2eSample, algo string, cli bool, key, other *signing.SecretKey) {
	ctx := context.Background()
	g := sample.g
	// Through a proxy that counts the HTTP requests.
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	bucket := srv.NewBucket(t)
	rawURL := "s3://" + bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region
	u, err := s3cache.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3cache.OpenS3(ctx, u, srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	pushOnce := func() *push.Result {
		t.Helper()
		if !cli {
			res, err := push.Push(ctx, b, g, push.Options{Compression: algo, Keys: []*signing.SecretKey{key}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		args := append([]string{"push", "--cache", rawURL, "--include-outputs", "--compression", algo, "--json"}, sample.roots...)
		r := runCLI(t, cliEnv(t, srv, key), args...)
		if r.code != 0 {
			t.Fatalf("nixbucket push: exit %d: %s", r.code, r.stderr)
		}
		var res push.Result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("push --json printed %q: %v", r.stdout, err)
		}
		return &res
	}

	res := pushOnce()
	t.Logf("pushed %d paths, %d NAR bytes as %d in %.1fs", res.Pushed, res.NarBytes, res.FileBytes, res.Seconds)
	if res.Paths != g.Len() || res.Pushed != g.Len() || res.Skipped != 0 || res.NarBytes != g.NarSize() {
		t.Fatalf("first push: %+v, want %d pushed of %d NAR bytes", res, g.Len(), g.NarSize())
	}
	if algo != "none" && res.FileBytes >= res.NarBytes {
		t.Errorf("%s: %d NAR bytes uploaded as %d", algo, res.NarBytes, res.FileBytes)
	}
	narPuts := proxy.Count(isNarPut) + proxy.Count(isCreateMultipart)
	narinfoPuts := proxy.Count(isNarInfoPut)
	if narPuts != g.Len() || narinfoPuts != g.Len() {
		t.Errorf("first push uploaded %d NARs and %d narinfos, want %d of each", narPuts, narinfoPuts, g.Len())
	}

	before := proxy.Requests()
	headsBefore := proxy.Count(s3test.IsMethod(http.MethodHead))
	putsBefore := proxy.Count(s3test.IsMethod(http.MethodPut)) + proxy.Count(s3test.IsMethod(http.MethodPost))
	res = pushOnce()
	if res.Pushed != 0 || res.Skipped != g.Len() {
		t.Fatalf("second push: %+v, want everything skipped", res)
	}
	if n := proxy.Count(s3test.IsMethod(http.MethodPut)) + proxy.Count(s3test.IsMethod(http.MethodPost)) - putsBefore; n != 0 {
		t.Errorf("second push made %d PUT or POST requests, want 0", n)
	}
	// A GET of nix-cache-info (for the CLI, also its check that the
	// bucket answers), then at once a LIST of the first page of each of
	// three ranges of the key space, two before nar/ and one after (the
	// NARs skipped): the bucket's n+1 other keys, hashes spread evenly,
	// fit in them. No HEAD.
	n := proxy.Requests() - before
	want := 1 + 3
	if g.Len() > 2400 {
		t.Fatalf("the sample has %d paths: the count below assumes each share's keys fit in one page", g.Len())
	}
	if n != want {
		t.Errorf("second push made %d HTTP requests, want %d", n, want)
	}
	if heads := proxy.Count(s3test.IsMethod(http.MethodHead)) - headsBefore; heads != 0 {
		t.Errorf("second push made %d HEAD requests, want none", heads)
	}

	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	paths := g.Paths()
	root, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), paths)
	if err != nil {
		t.Fatalf("nix could not substitute what was pushed: %v", err)
	}
	nixtest.AssertInStore(t, root, paths)

	if algo == "xz" {
		if streams := xzStreams(t, b, sample.huge); streams < 3 {
			t.Errorf("the %d-byte NAR of %s is %d xz stream(s), want one per 16 MiB chunk (3)", g.Info(sample.huge).NarSize, sample.huge, streams)
		} else {
			t.Logf("the NAR of %s is %d xz streams", sample.huge, streams)
		}
	}

	app := ""
	for _, p := range paths {
		if strings.HasSuffix(p, "-app") {
			app = p
		}
	}
	_, err = nixtest.Substitute(t, web.URL, other.PublicKey().String(), []string{app})
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("nix substituted %s signed by another key with the same name: %v", app, err)
	}
}

// xzStreams downloads the NAR of path from b and counts its xz streams
// with xz-utils (`xz --robot --list`).
func xzStreams(t *testing.T, b s3cache.Bucket, path string) int {
	t.Helper()
	ctx := context.Background()
	text, err := s3cache.ReadSmall(ctx, b, layout.NarInfoKeyOf(path), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.ParseString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if ni.Compression != "xz" || !strings.HasSuffix(ni.URL, ".nar.xz") {
		t.Fatalf("narinfo of %s: compression %s, URL %s", path, ni.Compression, ni.URL)
	}
	rc, err := b.Get(ctx, ni.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	file := filepath.Join(t.TempDir(), "nar.xz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("xz", "--robot", "--list", file).Output()
	if err != nil {
		t.Fatalf("xz --robot --list: %v (run `make test` to install xz-utils)", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Split(line, "\t"); len(fields) > 2 && fields[0] == "file" {
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("xz --robot --list: %q", line)
			}
			return n
		}
	}
	t.Fatalf("xz --robot --list printed no file line: %q", out)
	return 0
}
