package serve_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
)

// TestMetricsAcceptPush has real Nix push a closure through a handler
// accepting pushes, with its metrics on a pedantic registry (which checks
// them at every gather): the PUTs refused without the token are counted
// as 401s, the NAR bytes received are the NARs' sizes in the bucket, a
// 2xx PUT is counted per NAR object, and the bucket's puts, lists and
// server clock (the cache lock's) are timed, at least a put per object
// written. Two handlers on one registry share its metrics.
func TestMetricsAcceptPush(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	key, _ := signing.GenerateSecretKey("metrics-accept-1")
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.NewBucket(t))
	token, err := serve.NewToken(testToken)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	opts := serve.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg, Push: &serve.PushOptions{
		Token:       token,
		TrustedKeys: signing.NewPublicKeys(key.PublicKey()),
		Lock:        lock.Options{Settle: 20 * time.Millisecond},
		LockIdle:    100 * time.Millisecond,
	}}
	h := serve.New(b, opts)
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		h.(io.Closer).Close()
	})
	serve.New(b, serve.Options{Metrics: reg}) // a second handler: shares the metrics, no panic

	app := nixtest.Build(t, nixtest.Sample(t, 3, "metrics-accept"), "app")[0]
	dir := t.TempDir()
	keyFile, netrc := filepath.Join(dir, "key"), filepath.Join(dir, "netrc")
	os.WriteFile(keyFile, []byte(key.Encode()), 0o600)
	os.WriteFile(netrc, []byte("machine 127.0.0.1 login ci password "+testToken+"\n"), 0o600)
	copyTo := func(netrcFile string) error {
		args := append([]string{"copy", "--to", hs.URL + "?secret-key=" + keyFile, "--option", "netrc-file", netrcFile, app}, nixtest.Options...)
		_, err := nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix", args...)
		return err
	}
	if err := copyTo(filepath.Join(dir, "no-netrc")); err == nil {
		t.Fatal("nix copy without the token succeeded")
	}
	if err := copyTo(netrc); err != nil {
		t.Fatalf("nix copy --to %s: %v", hs.URL, err)
	}

	var objects, nars int
	var narBytes int64
	if err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		if !strings.HasPrefix(o.Key, layout.LocksDir) {
			objects++
		}
		if layout.IsNar(o.Key) {
			nars++
			narBytes += o.Size
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if nars == 0 {
		t.Fatal("nix copy pushed no NAR: the test would prove nothing")
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering serve's metrics: %v", err)
	}
	sum := func(name string, match func(map[string]string) bool) float64 {
		var v float64
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if match(labels(m)) {
					v += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return v
	}
	// is matches labels k=v…; a value "2xx" matches codes 200 to 299.
	is := func(kv ...string) func(map[string]string) bool {
		return func(l map[string]string) bool {
			for i := 0; i < len(kv); i += 2 {
				want, have := kv[i+1], l[kv[i]]
				if p, ok := strings.CutSuffix(want, "xx"); ok && len(have) == 3 && strings.HasPrefix(have, p) {
					continue
				}
				if have != want {
					return false
				}
			}
			return true
		}
	}
	if n := sum("nixbucket_serve_requests_total", is("method", "PUT", "code", "401")); n == 0 {
		t.Errorf("no PUT refused with 401 counted, though the first nix copy had no token")
	}
	if n := sum("nixbucket_serve_requests_total", is("method", "PUT", "kind", "nar", "code", "2xx")); n != float64(nars) {
		t.Errorf("%v NAR PUTs answered 2xx, the bucket has %d NARs", n, nars)
	}
	if n := sum("nixbucket_serve_received_bytes_total", is("kind", "nar")); n != float64(narBytes) {
		t.Errorf("%v NAR bytes received, the bucket's NARs are %d bytes", n, narBytes)
	}
	for op, least := range map[string]int{"put": objects, "list": 1, "clock": 1, "head": 1} {
		if n := sum("nixbucket_serve_backend_request_duration_seconds", is("operation", op)); n < float64(least) {
			t.Errorf("%v bucket %s operations timed, want at least %d", n, op, least)
		}
	}
	if n := sum("nixbucket_serve_backend_errors_total", is()); n != 0 {
		t.Errorf("%v bucket operations failed", n)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
