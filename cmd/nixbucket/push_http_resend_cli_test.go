package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
)

// resendExpr is a closure whose large path's NAR (2 MiB of random bytes,
// which no compressor shrinks) is larger than a connection may carry
// through the fault proxy, and a small one referring to it. %s is a salt.
const resendExpr = `let
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; args = [ "-c" script ]; };
  big = mk "resend-big-%[1]s" "mkdir $out; head -c 2097152 /dev/urandom > $out/data";
  app = mk "resend-app-%[1]s" "mkdir $out; echo ${big} > $out/ref";
in { inherit big app; }`

// cutLimit is how many bytes a connection to the server may carry
// through the proxy while its limit_data toxic is on: more than every
// request of the push but the large NAR.
const cutLimit = 512 << 10

// bodyWatch wraps a handler: the first request body that breaks off
// (the proxy cut its connection) runs cut, once, and the request then
// goes on as usual.
func bodyWatch(next http.Handler, cut func()) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &watchedBody{ReadCloser: r.Body, broke: func() { once.Do(cut) }}
		next.ServeHTTP(w, r)
	})
}

// nonFatal reports a failure without stopping the goroutine, as a
// handler's must.
type nonFatal struct{ testing.TB }

func (n nonFatal) Fatalf(format string, args ...any) { n.Errorf(format, args...) }

type watchedBody struct {
	io.ReadCloser
	broke func()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.broke()
	}
	return n, err
}

// TestPushResendsBrokenNAR pushes through a real fault proxy (toxiproxy)
// in front of a server accepting pushes (serve's handler, writing to
// MinIO): a limit_data toxic cuts every connection after cutLimit bytes,
// so the large NAR's first upload breaks off midway; the server takes
// the toxic off once it saw that body break. push sends the NAR again
// from the start, says so on stderr, and succeeds; verify --deep finds
// the bucket whole.
func TestPushResendsBrokenNAR(t *testing.T) {
	t.Parallel()
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	built := nixtest.Build(t, nixtest.WriteExpr(t, fmt.Sprintf(resendExpr, hex.EncodeToString(salt))), "big", "app")
	key, _ := signing.GenerateSecretKey("cli-resend-1")

	srv := s3test.Start(t, s3test.MinIO)
	bucket := srv.NewBucket(t)
	token := "cli-resend-" + s3test.RandomHex(16)
	tok, err := serve.NewToken(token)
	if err != nil {
		t.Fatal(err)
	}
	h := serve.New(srv.Open(t, bucket), serve.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Push: &serve.PushOptions{
		Token: tok, TrustedKeys: signing.NewPublicKeys(key.PublicKey()),
		Lock: lock.Options{Settle: 20 * time.Millisecond}, LockIdle: 100 * time.Millisecond,
	}})
	var x *s3test.Toxi
	hs := httptest.NewServer(bodyWatch(h, func() { x.RemoveToxic(nonFatal{t}, "cut") }))
	t.Cleanup(func() {
		hs.Close()
		h.(io.Closer).Close()
	})
	x = s3test.NewToxi(t, hs.URL)
	x.Toxic(t, "cut", "limit_data", "upstream", map[string]any{"bytes": cutLimit})

	env := []string{pushTokenEnv + "=" + token, "NIXBUCKET_SECRET_KEY=" + key.Encode()}
	code, stdout, stderr := runBin(t, env, "push", "--cache", x.Endpoint+"?compression=zstd", built[1])
	if code != 0 {
		t.Fatalf("push through the fault proxy: exit %d: %s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "again from the start") || !strings.Contains(stderr, "WARN") {
		t.Errorf("push does not say it sent a NAR again: %q", stderr)
	}
	t.Logf("push's stderr: %s", stderr)
	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.StoreURL(bucket), "--deep", "--trusted-public-key", key.PublicKey().String())
	if code != 0 || !strings.Contains(stdout, "ok: 2 narinfos, 2 NARs") {
		t.Fatalf("verify --deep after the resent NAR: exit %d: %s%s", code, stdout, stderr)
	}
}
