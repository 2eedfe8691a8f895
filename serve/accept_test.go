package serve_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

const testToken = "0123456789abcdef-push-token"

// acceptServer serves a new MinIO bucket with pushes accepted from
// testToken, narinfos signed by trusted only.
func acceptServer(t *testing.T, trusted *signing.SecretKey) (*httptest.Server, s3cache.Bucket) {
	t.Helper()
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.NewBucket(t))
	token, err := serve.NewToken(testToken)
	if err != nil {
		t.Fatal(err)
	}
	h := serve.New(b, serve.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Push: &serve.PushOptions{
		Token:       token,
		TrustedKeys: signing.NewPublicKeys(trusted.PublicKey()),
		Lock:        lock.Options{Settle: 20 * time.Millisecond},
		LockIdle:    100 * time.Millisecond,
	}})
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		h.(io.Closer).Close()
	})
	return hs, b
}

// TestAcceptNixCopy has real Nix push a closure through serve
// --accept-push into MinIO (nix copy --to http://… with its netrc-file),
// then a fresh Nix substitute it with signatures required; verify finds
// the bucket clean, and the lock is released once the pushes end.
func TestAcceptNixCopy(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	key, _ := signing.GenerateSecretKey("accept-nix-1")
	hs, b := acceptServer(t, key)
	app := nixtest.Build(t, nixtest.Sample(t, 3, "accept-nix"), "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	netrc := filepath.Join(dir, "netrc")
	os.WriteFile(keyFile, []byte(key.Encode()), 0o600)
	os.WriteFile(netrc, []byte("machine 127.0.0.1 login ci password "+testToken+"\n"), 0o600)
	to := hs.URL + "?secret-key=" + keyFile + "&write-nar-listing=true"
	copyTo := func(netrcFile string) error {
		args := append([]string{"copy", "--to", to, "--option", "netrc-file", netrcFile, app}, nixtest.Options...)
		_, err := nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix", args...)
		return err
	}
	if err := copyTo(filepath.Join(dir, "no-netrc")); err == nil {
		t.Fatal("nix copy without the token succeeded")
	}
	if got := listing(t, b); len(got) != 0 {
		t.Fatalf("a push without the token wrote %v", got)
	}
	if err := copyTo(netrc); err != nil {
		t.Fatalf("nix copy --to %s: %v", hs.URL, err)
	}
	keys := listing(t, b)
	for _, p := range closure {
		if !slices.Contains(keys, layout.NarInfoKeyOf(p)) {
			t.Errorf("%s was not pushed; the bucket has %v", p, keys)
		}
		if !slices.Contains(keys, layout.ListingKey(storepath.HashPart(p))) {
			t.Errorf("the listing of %s was not pushed", p)
		}
	}
	root, err := nixtest.Substitute(t, hs.URL, key.PublicKey().String(), closure)
	if err != nil {
		t.Fatalf("substituting what nix copy pushed: %v", err)
	}
	nixtest.AssertInStore(t, root, closure)
	r, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %+v", err, r)
	}
	// The lock goes once the pushes end: gc takes the exclusive one.
	l, err := lock.Acquire(context.Background(), b, lock.Exclusive, lock.Options{Wait: time.Minute, Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("the server kept the shared lock after the push: %v", err)
	}
	l.Release()
}

// listing returns every key of b.
func listing(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// visible returns the keys of b a reader of the cache sees: everything
// but the NARs no narinfo names and the locks.
func visible(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	named := map[string]bool{}
	var keys []string
	for _, k := range listing(t, b) {
		if _, ok := layout.NarInfoHash(k); ok {
			data, err := s3cache.ReadSmall(context.Background(), b, k, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			ni, err := narinfo.ParseString(string(data))
			if err != nil {
				t.Fatal(err)
			}
			named[ni.URL] = true
		}
	}
	for _, k := range listing(t, b) {
		if layout.KindOf(k) != layout.KindLock && (!layout.IsNar(k) || named[k]) {
			keys = append(keys, k)
		}
	}
	return keys
}

// fakePath is a store path with a made-up NAR (compressed with ext), and
// its narinfo, signed by key.
type fakePath struct {
	path   string
	nar    []byte
	narKey string
	ni     *narinfo.NarInfo
}

func newFakePath(t *testing.T, name, ext string, key *signing.SecretKey, refs ...string) *fakePath {
	t.Helper()
	var h [20]byte
	rand.Read(h[:])
	p := storepath.DefaultDir() + "/" + nixbase32.EncodeToString(h[:]) + "-" + name
	nar := make([]byte, 1000)
	rand.Read(nar)
	fileHash := sha256.Sum256(nar)
	narHash := sha256.Sum256(append([]byte("nar"), nar...))
	f := &fakePath{path: p, nar: nar, narKey: layout.NarKey(nixbase32.EncodeToString(fileHash[:]), ext)}
	var bases []string
	for _, r := range refs {
		bases = append(bases, storepath.Base(r))
	}
	f.ni = &narinfo.NarInfo{
		StorePath: p, URL: f.narKey, Compression: "xz",
		FileHash: nixhash.MustNewHash(nixhash.SHA256, fileHash[:]), FileSize: uint64(len(nar)),
		NarHash: nixhash.MustNewHash(nixhash.SHA256, narHash[:]), NarSize: 2000, References: bases,
	}
	if ext == "" {
		f.ni.Compression = "none"
	}
	if err := push.Sign(f.ni, []*signing.SecretKey{key}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakePath) narInfoKey() string { return layout.NarInfoKeyOf(f.path) }

// request makes a request to the server; token "" sends none.
func request(t *testing.T, base, method, key, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/"+key, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.SetBasicAuth("anyone", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s %s: 401 without WWW-Authenticate", method, key)
	}
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// TestAcceptRefusesHostilePushes makes each hostile push of the list
// against a server that accepts pushes: each is refused with a 4xx and
// leaves the cache's visible content as it was; a good push of the same
// kind goes through, so that every refusal is the check's.
func TestAcceptRefusesHostilePushes(t *testing.T) {
	t.Parallel()
	trusted, _ := signing.GenerateSecretKey("accept-trusted-1")
	other, _ := signing.GenerateSecretKey("accept-other-1")
	hs, b := acceptServer(t, trusted)
	put := func(key string, body []byte) (int, string) {
		return request(t, hs.URL, http.MethodPut, key, testToken, body)
	}

	// A good path, pushed as Nix does: listing, NAR, narinfo.
	good := newFakePath(t, "good", ".xz", trusted)
	for _, kv := range []struct {
		key  string
		body []byte
	}{
		{layout.CacheInfoKey, []byte("StoreDir: /nix/store\n")},
		{layout.ListingKey(storepath.HashPart(good.path)), []byte(`{"version":1,"root":{"type":"regular","size":1}}`)},
		{good.narKey, good.nar},
		{good.narInfoKey(), []byte(good.ni.String())},
	} {
		if code, msg := put(kv.key, kv.body); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", kv.key, code, msg)
		}
	}
	if code, _ := request(t, hs.URL, http.MethodGet, good.narInfoKey(), "", nil); code != http.StatusOK {
		t.Fatalf("GET of the pushed narinfo: %d", code)
	}

	tampered := newFakePath(t, "tampered", ".xz", trusted)
	tampered.ni.NarSize++ // the signature no longer matches
	wrongBytes := newFakePath(t, "wrong-bytes", ".xz", trusted)
	wrongSize := newFakePath(t, "wrong-size", ".xz", trusted)
	wrongSize.ni.FileSize++
	push.Sign(wrongSize.ni, []*signing.SecretKey{trusted})
	noNAR := newFakePath(t, "no-nar", ".xz", trusted)
	plain := newFakePath(t, "plain", "", trusted)
	missingRef := newFakePath(t, "missing-ref", ".xz", trusted, storepath.DefaultDir()+"/"+strings.Repeat("0", 32)+"-absent")
	wrongKey := newFakePath(t, "wrong-key", ".xz", other)
	garbage := bytes.Repeat([]byte("x"), 1000)
	elsewhere := newFakePath(t, "elsewhere", ".xz", trusted) // its narinfo names good's NAR, with its own FileHash
	elsewhere.ni.URL = good.narKey
	elsewhere.ni.Sigs = nil
	push.Sign(elsewhere.ni, []*signing.SecretKey{trusted})

	for _, tc := range []struct {
		name      string
		nar       *fakePath // its NAR is PUT first (correct bytes), unless narBody
		narBody   []byte
		method    string
		key       string
		token     string
		body      []byte
		status    int
		narStatus int // the NAR's PUT, when not 200
	}{
		{name: "narinfo signed by an untrusted key", nar: wrongKey, key: wrongKey.narInfoKey(), body: []byte(wrongKey.ni.String()), status: 403},
		{name: "narinfo with a tampered field", nar: tampered, key: tampered.narInfoKey(), body: []byte(tampered.ni.String()), status: 403},
		{name: "narinfo whose NAR has other bytes (FileHash)", nar: wrongBytes, narBody: garbage, key: wrongBytes.narInfoKey(), body: []byte(wrongBytes.ni.String()), status: 422},
		{name: "narinfo with another FileSize", nar: wrongSize, key: wrongSize.narInfoKey(), body: []byte(wrongSize.ni.String()), status: 422},
		{name: "uncompressed NAR whose bytes do not have its key's hash", nar: plain, narBody: garbage, narStatus: 422,
			key: plain.narInfoKey(), body: []byte(plain.ni.String()), status: 409},
		{name: "narinfo whose NAR is missing", key: noNAR.narInfoKey(), body: []byte(noNAR.ni.String()), status: 409},
		{name: "narinfo naming another path's NAR", key: elsewhere.narInfoKey(), body: []byte(elsewhere.ni.String()), status: 400},
		{name: "narinfo with a missing reference", nar: missingRef, key: missingRef.narInfoKey(), body: []byte(missingRef.ni.String()), status: 409},
		{name: "narinfo that does not parse", key: noNAR.narInfoKey(), body: []byte("StorePath: nonsense\n"), status: 400},
		{name: "narinfo under another path's key", nar: noNAR, key: good.narInfoKey(), body: []byte(noNAR.ni.String()), status: 400},
		{name: "no token", key: good.narInfoKey(), token: "-", body: []byte(good.ni.String()), status: 401},
		{name: "wrong token", key: good.narInfoKey(), token: "not-the-push-token-at-all", body: []byte(good.ni.String()), status: 401},
		{name: "DELETE of a narinfo", method: http.MethodDelete, key: good.narInfoKey(), status: 405},
		{name: "DELETE of a NAR", method: http.MethodDelete, key: good.narKey, status: 405},
		{name: "POST", method: http.MethodPost, key: good.narInfoKey(), body: []byte(good.ni.String()), status: 405},
		{name: "key ../x", key: "../x", body: []byte("x"), status: 400},
		{name: "key nar/../x", key: "nar/../x.narinfo", body: []byte("x"), status: 400},
		{name: "key roots/…", key: "roots/main/1.json", body: []byte("{}"), status: 403},
		{name: "key locks/…", key: "locks/exclusive-x.json", body: []byte("{}"), status: 403},
		{name: "key stats/…", key: "stats/x.json", body: []byte("{}"), status: 403},
		{name: "key log/…", key: "log/" + storepath.Base(good.path) + ".drv", body: []byte("log"), status: 403},
		{name: "key realisations/…", key: "realisations/sha256:x!out.doi", body: []byte("{}"), status: 403},
		{name: "key nar/ not a NAR name", key: "nar/x.txt", body: []byte("x"), status: 403},
		{name: "key index.html", key: "index.html", body: []byte("<p>"), status: 403},
		{name: "nix-cache-info with another StoreDir", key: layout.CacheInfoKey, body: []byte("StoreDir: /gnu/store\n"), status: 409},
		{name: "nix-cache-info without StoreDir", key: layout.CacheInfoKey, body: []byte("Priority: 1\n"), status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := visible(t, b)
			if tc.nar != nil {
				body := tc.nar.nar
				if tc.narBody != nil {
					body = tc.narBody
				}
				want := tc.narStatus
				if want == 0 {
					want = http.StatusOK
				}
				if code, msg := put(tc.nar.narKey, body); code != want {
					t.Fatalf("PUT %s: %d %s, want %d", tc.nar.narKey, code, msg, want)
				}
				if tc.narStatus != 0 {
					if _, err := b.Stat(context.Background(), tc.nar.narKey); !errors.Is(err, s3cache.ErrNotFound) {
						t.Errorf("the refused NAR %s is in the bucket (%v)", tc.nar.narKey, err)
					}
				}
			}
			method, token := tc.method, tc.token
			if method == "" {
				method = http.MethodPut
			}
			switch token {
			case "":
				token = testToken
			case "-":
				token = ""
			}
			code, msg := request(t, hs.URL, method, tc.key, token, tc.body)
			if code != tc.status {
				t.Fatalf("%s %s: %d %q, want %d", method, tc.key, code, msg, tc.status)
			}
			t.Logf("refused: %s %s: %d %s", method, tc.key, code, msg)
			if after := visible(t, b); !slices.Equal(before, after) {
				t.Fatalf("visible keys changed from %v to %v", before, after)
			}
		})
	}
	// The refused narinfos go through once what they lacked is right.
	if code, msg := put(missingRef.narInfoKey(), []byte(missingRef.ni.String())); code != 409 {
		t.Fatalf("missing reference: %d %s", code, msg)
	}
	fixed := newFakePath(t, "fixed", ".xz", trusted, good.path)
	put(fixed.narKey, fixed.nar)
	if code, msg := put(fixed.narInfoKey(), []byte(fixed.ni.String())); code != http.StatusOK {
		t.Fatalf("a narinfo whose reference is there: %d %s", code, msg)
	}
	if code, msg := put(layout.CacheInfoKey, []byte("StoreDir: /nix/store\n")); code != http.StatusOK {
		t.Fatalf("nix-cache-info with the same StoreDir: %d %s", code, msg)
	}
	// A published path pointed at other bytes: its signature still
	// verifies (it covers neither URL nor FileHash) and the new NAR
	// matches its FileHash, but the narinfo the cache has is kept.
	otherNAR := bytes.Repeat([]byte("o"), 1000)
	otherHash := sha256.Sum256(otherNAR)
	repointed := *good.ni
	repointed.URL = layout.NarKey(nixbase32.EncodeToString(otherHash[:]), ".xz")
	repointed.FileHash = nixhash.MustNewHash(nixhash.SHA256, otherHash[:])
	if code, msg := put(repointed.URL, otherNAR); code != http.StatusOK {
		t.Fatalf("PUT of another NAR: %d %s", code, msg)
	}
	if code, msg := put(good.narInfoKey(), []byte(repointed.String())); code != http.StatusOK {
		t.Fatalf("a narinfo of a path the cache has: %d %s, want 200 (kept)", code, msg)
	}
	if got, err := s3cache.ReadSmall(context.Background(), b, good.narInfoKey(), 1<<16); err != nil || string(got) != good.ni.String() {
		t.Fatalf("the published narinfo was replaced: %v\n%s", err, got)
	}
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/"+noNAR.narKey, bytes.NewReader(noNAR.nar))
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with a bearer token: %v %v", resp, err)
	}
	if code, msg := put(noNAR.narInfoKey(), []byte(noNAR.ni.String())); code != http.StatusOK {
		t.Fatalf("a narinfo once its NAR is there: %d %s", code, msg)
	}
	r, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(trusted.PublicKey())})
	if err != nil || !r.OK() {
		t.Fatalf("verify after the hostile pushes: %v %+v", err, r.Faults)
	}
}

// signalHandler is a slog handler that closes a channel at the first
// record whose message is msg.
type signalHandler struct {
	slog.Handler
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}

// TestAcceptHoldsLock streams a NAR of several multipart parts, with no
// Content-Length, through the server: while it is in flight the server
// holds the shared lock (gc's exclusive one is refused), the NAR arrives
// whole and its narinfo is accepted, and once the pushes have ended the
// lock is released (gc takes its lock).
func TestAcceptHoldsLock(t *testing.T) {
	t.Parallel()
	key, _ := signing.GenerateSecretKey("accept-lock-1")
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.NewBucket(t))
	token, _ := serve.NewToken(testToken)
	took := signalHandler{Handler: slog.DiscardHandler, msg: "took the shared cache lock for pushes", once: new(sync.Once), ch: make(chan struct{})}
	h := serve.New(b, serve.Options{Logger: slog.New(took), Push: &serve.PushOptions{
		Token: token, TrustedKeys: signing.NewPublicKeys(key.PublicKey()),
		Lock: lock.Options{Settle: 20 * time.Millisecond}, LockIdle: 100 * time.Millisecond,
	}})
	hs := httptest.NewServer(h)
	defer h.(io.Closer).Close()
	defer hs.Close()

	f := newFakePath(t, "big", ".zst", key)
	f.nar = make([]byte, 12<<20)
	rand.Read(f.nar)
	sum := sha256.Sum256(f.nar)
	f.narKey = layout.NarKey(nixbase32.EncodeToString(sum[:]), ".zst")
	f.ni.URL, f.ni.FileHash, f.ni.FileSize = f.narKey, nixhash.MustNewHash(nixhash.SHA256, sum[:]), uint64(len(f.nar))
	f.ni.Sigs = nil
	push.Sign(f.ni, []*signing.SecretKey{key})

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/"+f.narKey, pr)
	req.SetBasicAuth("ci", testToken)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		done <- err
	}()
	go func() {
		pw.Write(f.nar[:1<<20])
		<-took.ch
		pw.Write(f.nar[1<<20:])
		pw.Close()
	}()
	select {
	case <-took.ch:
	case err := <-done:
		t.Fatalf("the PUT ended before the server took the lock: %v", err)
	}
	ctx := context.Background()
	if l, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Settle: 20 * time.Millisecond}); !errors.Is(err, lock.ErrLocked) {
		if l != nil {
			l.Release()
		}
		t.Fatalf("gc's lock while a NAR uploads through the server: %v, want %v", err, lock.ErrLocked)
	}
	if err := <-done; err != nil {
		t.Fatalf("streaming PUT of a 12 MiB NAR: %v", err)
	}
	if code, msg := request(t, hs.URL, http.MethodPut, f.narInfoKey(), testToken, []byte(f.ni.String())); code != http.StatusOK {
		t.Fatalf("narinfo of the streamed NAR: %d %s", code, msg)
	}
	if info, err := b.Stat(ctx, f.narKey); err != nil || info.Size != int64(len(f.nar)) {
		t.Fatalf("the streamed NAR in the bucket: %+v %v", info, err)
	}

	// A stream cut off midway leaves nothing.
	cut := layout.NarKey(nixbase32.EncodeToString(sum[:])[:51]+"0", ".zst")
	pr, pw = io.Pipe()
	go func() {
		pw.Write(f.nar[:7<<20])
		pw.CloseWithError(errors.New("cut off"))
	}()
	req, _ = http.NewRequest(http.MethodPut, hs.URL+"/"+cut, pr)
	req.SetBasicAuth("ci", testToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	l, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Wait: time.Minute, Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("the server kept the shared lock after the push: %v", err)
	}
	l.Release()
	if _, err := b.Stat(ctx, cut); !errors.Is(err, s3cache.ErrNotFound) {
		t.Errorf("a NAR cut off midway is in the bucket: %v", err)
	}
	if err := b.ListMultipartUploads(ctx, "", func(u s3cache.Upload) error {
		t.Errorf("a multipart upload is left: %s", u.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
