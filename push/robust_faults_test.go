package push_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// Request matchers for the S3 operations a push makes.
func isNarInfoPut(r *http.Request) bool {
	return s3test.IsPutObject(r) && strings.HasSuffix(r.URL.Path, layout.NarInfoSuffix)
}

func isNarPut(r *http.Request) bool {
	return s3test.IsPutObject(r) && strings.Contains(r.URL.Path, "/"+layout.NarDir)
}

func isList(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Query().Has("list-type")
}

func isGetObject(r *http.Request) bool { return r.Method == http.MethodGet && !isList(r) }

func isCreateMultipart(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploads")
}

func isCompleteMultipart(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

func isPutOf(key string) func(*http.Request) bool {
	return func(r *http.Request) bool { return s3test.IsPutObject(r) && strings.HasSuffix(r.URL.Path, "/"+key) }
}

// faultsFixture is a closure to push in process: a DAG of small paths,
// input-addressed paths that refer to each other, and a 12 MiB NAR
// uploaded in parts.
type faultsFixture struct {
	roots   []string
	graph   *closure.Graph
	lib     string   // referred to by app, itself in all's closure
	needLib []string // the paths whose closure holds lib
	big     string
	key     *signing.SecretKey
}

func newFaultsFixture(t *testing.T) *faultsFixture {
	t.Helper()
	f := nixtest.Sample(t, 40, "faults")
	fx := &faultsFixture{key: newKey(t, "faults-test-1")}
	fx.roots = append(nixtest.Build(t, f, "all"), nixtest.Build(t, nixtest.WriteExpr(t, bigExpr))...)
	fx.big = fx.roots[1]
	fx.lib = nixtest.Build(t, f, "lib")[0]
	for _, p := range nixtest.Lines(t, "nix-store", "-q", "--referrers-closure", fx.lib) {
		if p != fx.lib && !strings.HasSuffix(p, ".drv") {
			fx.needLib = append(fx.needLib, p)
		}
	}
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fx.graph, err = closure.Compute(ctx, s, fx.roots, closure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// openThrough opens bucket on srv through proxy, with short backoffs.
func openThrough(t *testing.T, srv *s3test.Server, proxy *s3test.FaultProxy, bucket string, attempts int) s3cache.Bucket {
	t.Helper()
	u, err := s3cache.ParseURL("s3://" + bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	opts.MaxBackoff = 100 * time.Millisecond
	opts.MaxAttempts = attempts
	b, err := s3cache.OpenS3(context.Background(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPushFaults pushes through a fault-injecting proxy in front of each
// real server. Transient faults (throttling, 500s, connection resets,
// stalls before and during request bodies) on every kind of request are
// retried and the push completes; persistent ones make it fail with an
// error naming the object and the cause. Either way the cache, read
// directly, is sound afterwards.
func TestPushFaults(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	fx := newFaultsFixture(t)
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			t.Run("transient", func(t *testing.T) { transientFaults(t, srv, fx) })
			t.Run("persistent", func(t *testing.T) { persistentFaults(t, srv, fx) })
		})
	}
}

func transientFaults(t *testing.T, srv *s3test.Server, fx *faultsFixture) {
	ctx := context.Background()
	rules := []s3test.Rule{
		{Match: isNarInfoPut, Fault: s3test.SlowDown, Times: 5},
		{Match: isNarPut, Fault: s3test.InternalError, Times: 3},
		{Match: s3test.IsUploadPart, Fault: s3test.InternalError, Times: 2},
		{Match: s3test.IsUploadPart, Fault: s3test.Reset, Times: 1},
		{Match: s3test.IsUploadPart, Fault: s3test.StallBody, Times: 1, Delay: 1500 * time.Millisecond},
		{Match: s3test.IsPutObject, Fault: s3test.Stall, Times: 3, Delay: time.Second},
		{Match: s3test.IsPutObject, Fault: s3test.StallBody, Times: 2, Delay: time.Second},
		{Match: s3test.IsPutObject, Fault: s3test.Reset, Times: 3},
		{Match: isGetObject, Fault: s3test.InternalError, Times: 1},
		{Match: isGetObject, Fault: s3test.Reset, Times: 1},
		{Match: isList, Fault: s3test.SlowDown, Times: 1},
		{Match: isList, Fault: s3test.Stall, Times: 1, Delay: time.Second},
		{Match: isCreateMultipart, Fault: s3test.SlowDown, Times: 1},
		{Match: isCompleteMultipart, Fault: s3test.InternalError, Times: 1},
	}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint, rules...)
	bucket := srv.NewBucket(t)
	res, err := push.Push(ctx, openThrough(t, srv, proxy, bucket, 8), fx.graph, push.Options{Compression: "zstd", Keys: []*signing.SecretKey{fx.key}, Jobs: 4})
	if err != nil {
		t.Fatalf("push through transient faults: %v", err)
	}
	for i, r := range rules {
		if got := proxy.Injected(i); got != r.Times {
			t.Errorf("rule %d injected %d faults, want %d", i, got, r.Times)
		}
	}
	direct := srv.Open(t, bucket)
	rep := checkCache(t, direct, fx.key, "after a push through transient faults")
	if res.Pushed != fx.graph.Len() || rep.NarInfos != fx.graph.Len() || rep.Signed != fx.graph.Len() {
		t.Errorf("pushed %d, %d narinfos, %d signed; want all %d", res.Pushed, rep.NarInfos, rep.Signed, fx.graph.Len())
	}
	if n := unfinishedUploads(t, direct); n != 0 {
		t.Errorf("%d unfinished multipart uploads left", n)
	}
	t.Logf("%d requests, %d faults injected", proxy.Requests(), injected(proxy, rules))

	// The CLI through HEAD, LIST and GET faults: a rerun that finds
	// everything there, then verify.
	cliRules := []s3test.Rule{
		{Match: s3test.IsMethod(http.MethodHead), Fault: s3test.Reset, Times: 1},
		{Match: s3test.IsMethod(http.MethodHead), Fault: s3test.SlowDown, Times: 1},
		{Match: isList, Fault: s3test.InternalError, Times: 1},
		{Match: isGetObject, Fault: s3test.Reset, Times: 2},
		{Match: isGetObject, Fault: s3test.Stall, Times: 1, Delay: time.Second},
	}
	proxy = s3test.NewFaultProxy(t, srv.Endpoint, cliRules...)
	env := cliEnv(t, srv, fx.key)
	url := "s3://" + bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region
	r := runCLI(t, env, append([]string{"push", "--cache", url, "--compression", "zstd"}, fx.roots...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pushed 0 of ") {
		t.Errorf("push rerun through faults: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "verify", "--cache", url, "--deep", "--trusted-public-key", fx.key.PublicKey().String())
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: ") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("verify through faults: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for i, rule := range cliRules {
		if got := proxy.Injected(i); got != rule.Times {
			t.Errorf("CLI rule %d injected %d faults, want %d", i, got, rule.Times)
		}
	}
}

func injected(p *s3test.FaultProxy, rules []s3test.Rule) int {
	n := 0
	for i := range rules {
		n += p.Injected(i)
	}
	return n
}

func persistentFaults(t *testing.T, srv *s3test.Server, fx *faultsFixture) {
	const always = 1 << 30
	libInfo := layout.NarInfoKeyOf(fx.lib)
	cases := []struct {
		name    string
		rule    s3test.Rule
		errHas  []string // what the error must name
		absent  []string // paths whose narinfo must not be there
		emptied bool     // nothing at all may be written
	}{{
		name:   "a narinfo never written",
		rule:   s3test.Rule{Match: isPutOf(libInfo), Fault: s3test.InternalError, Times: always},
		errHas: []string{libInfo, "InternalError"},
		absent: append([]string{fx.lib}, fx.needLib...),
	}, {
		name:   "a multipart NAR never uploaded",
		rule:   s3test.Rule{Match: s3test.IsUploadPart, Fault: s3test.SlowDown, Times: always},
		errHas: []string{push.NarKey(fx.graph.Info(fx.big), "zstd"), "SlowDown"},
		absent: []string{fx.big},
	}, {
		name:    "every request fails",
		rule:    s3test.Rule{Fault: s3test.InternalError, Times: always},
		errHas:  []string{layout.CacheInfoKey, "InternalError"},
		emptied: true,
	}, {
		name:    "every connection is reset",
		rule:    s3test.Rule{Fault: s3test.Reset, Times: always},
		errHas:  []string{layout.CacheInfoKey, "127.0.0.1"},
		emptied: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy := s3test.NewFaultProxy(t, srv.Endpoint, tc.rule)
			bucket := srv.NewBucket(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := push.Push(ctx, openThrough(t, srv, proxy, bucket, 3), fx.graph, push.Options{Compression: "zstd", Keys: []*signing.SecretKey{fx.key}, Jobs: 4})
			if err == nil {
				t.Fatalf("push succeeded with %v on every matching request", tc.rule.Fault)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, s := range tc.errHas {
				if !strings.Contains(msg, s) {
					t.Errorf("error does not name %q", s)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line")
			}
			direct := srv.Open(t, bucket)
			checkCache(t, direct, fx.key, "after a failed push")
			have := narinfoHashes(t, direct)
			for _, h := range hashParts(tc.absent) {
				if have[h] {
					t.Errorf("narinfo %s.narinfo written, though its closure could not be", h)
				}
			}
			if keys := listKeys(t, direct); tc.emptied && len(keys) != 0 {
				t.Errorf("the bucket holds %v after a push that reached nothing", keys)
			}
			if n := unfinishedUploads(t, direct); n != 0 {
				t.Errorf("%d unfinished multipart uploads left", n)
			}
			t.Logf("%d narinfos written before the push stopped", len(have))
		})
	}
}
