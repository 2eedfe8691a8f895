package s3cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3cachetest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestS3Bucket runs the conformance suite against every real server, one
// fresh bucket per subtest.
func TestS3Bucket(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			s3cachetest.Run(t, func(t *testing.T) s3cache.Bucket { return srv.Open(t, srv.NewBucket(t)) })
		})
	}
}

// openURL opens raw with opts, failing the test on error.
func openURL(t *testing.T, raw string, opts s3cache.S3Options) *s3cache.S3Bucket {
	t.Helper()
	u, err := s3cache.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3cache.OpenS3(t.Context(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// everyOp runs each Bucket operation once against b and returns their
// errors by name.
func everyOp(ctx context.Context, b s3cache.Bucket) map[string]error {
	errs := map[string]error{}
	_, errs["Stat"] = b.Stat(ctx, "k")
	rc, err := b.Get(ctx, "k")
	if err == nil {
		rc.Close()
	}
	errs["Get"] = err
	errs["Put"] = b.Put(ctx, "k", strings.NewReader("data"), 4, s3cache.PutOptions{})
	errs["List"] = b.List(ctx, "", func(s3cache.ObjectInfo) error { return nil })
	errs["Delete"] = b.Delete(ctx, "k")
	return errs
}

func TestS3Errors(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)

			t.Run("WrongCredentials", func(t *testing.T) {
				for name, creds := range map[string]*s3cache.Credentials{
					"unknown key": {AccessKeyID: "NOSUCHKEY", SecretAccessKey: srv.SecretKey},
					"bad secret":  {AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong-secret-123"},
				} {
					b := openURL(t, srv.URL, s3cache.S3Options{Credentials: creds, MaxAttempts: 5})
					for op, err := range everyOp(t.Context(), b) {
						// versitygw answers an unknown key with 404
						// XAdminUserNotFound, which a HEAD response has no
						// body to tell from NoSuchKey: Stat asks again.
						if !errors.Is(err, s3cache.ErrAccessDenied) {
							t.Errorf("%s: %s error = %v, want ErrAccessDenied", name, op, err)
							continue
						}
						if !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || strings.Contains(err.Error(), srv.SecretKey) {
							t.Errorf("%s: %s error %q should point at AWS_ACCESS_KEY_ID and not show the secret", name, op, err)
						}
					}
				}
			})

			t.Run("NoSuchBucket", func(t *testing.T) {
				b := openURL(t, srv.StoreURL("no-such-bucket"), srv.Options())
				errs := everyOp(t.Context(), b)
				// HEAD has no body, so a missing bucket answers as a missing
				// key would; Stat asks HeadBucket to tell them apart.
				if err := errs["Stat"]; errors.Is(err, s3cache.ErrNotFound) {
					t.Errorf("Stat error = %v, want ErrNoSuchBucket, not ErrNotFound", err)
				}
				for _, op := range []string{"Stat", "Get", "Put", "List", "Delete"} {
					err := errs[op]
					if !errors.Is(err, s3cache.ErrNoSuchBucket) {
						t.Errorf("%s error = %v, want ErrNoSuchBucket", op, err)
						continue
					}
					if want := fmt.Sprintf(`bucket "no-such-bucket" does not exist at %s`, srv.Endpoint); !strings.Contains(err.Error(), want) {
						t.Errorf("%s error %q does not say %q", op, err, want)
					}
				}
			})
		})
	}
}

func TestS3Unreachable(t *testing.T) {
	t.Parallel()
	// A port that was just closed: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var dials int
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials++
			return (&net.Dialer{}).DialContext(ctx, network, a)
		},
	}}
	b := openURL(t, "s3://nix?endpoint=http://"+addr+"&region=garage", s3cache.S3Options{
		Credentials: &s3cache.Credentials{AccessKeyID: "a", SecretAccessKey: "b"},
		MaxAttempts: 4, MaxBackoff: 100 * time.Millisecond, HTTPClient: client,
	})
	_, err = b.Stat(t.Context(), "nix-cache-info")
	if !errors.Is(err, s3cache.ErrUnreachable) {
		t.Fatalf("Stat error = %v, want ErrUnreachable", err)
	}
	if want := "cannot reach http://" + addr + ": connection refused (gave up after 4 attempts)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if dials != 4 {
		t.Errorf("dialled %d times, want 4 (MaxAttempts)", dials)
	}
}

// TestS3Retries puts a fault-injecting proxy in front of each server and
// checks that throttling, server errors and connection resets are retried
// (each part on its own) until the upload succeeds.
func TestS3Retries(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			isPartTwo := func(r *http.Request) bool {
				return s3test.IsUploadPart(r) && r.URL.Query().Get("partNumber") == "2"
			}
			isGet := s3test.IsMethod(http.MethodGet)
			rules := []s3test.Rule{
				{Match: s3test.IsPutObject, Fault: s3test.SlowDown, Times: 2},
				{Match: isPartTwo, Fault: s3test.Reset, Times: 1},
				{Match: s3test.IsUploadPart, Fault: s3test.SlowDown, Times: 2},
				{Match: isGet, Fault: s3test.InternalError, Times: 1},
				{Match: isGet, Fault: s3test.Reset, Times: 1},
			}
			proxy := s3test.NewFaultProxy(t, srv.Endpoint, rules...)
			u := "s3://" + srv.Bucket + "?endpoint=" + proxy.URL + "&region=garage"
			opts := srv.Options()
			opts.MaxBackoff = 200 * time.Millisecond
			b := openURL(t, u, opts)
			ctx := t.Context()

			if err := b.Put(ctx, "small", strings.NewReader("hello"), 5, s3cache.PutOptions{}); err != nil {
				t.Fatalf("Put through 2 SlowDowns: %v", err)
			}
			data := make([]byte, 16<<20)
			rand.Read(data)
			err := b.Put(ctx, "nar/big.nar", io.MultiReader(bytes.NewReader(data)), -1, s3cache.PutOptions{PartSize: 5 << 20, Concurrency: 2})
			if err != nil {
				t.Fatalf("multipart Put through a reset and 2 SlowDowns: %v", err)
			}
			for _, key := range []string{"small", "nar/big.nar"} {
				rc, err := b.Get(ctx, key)
				if err != nil {
					t.Fatalf("Get(%s) through faults: %v", key, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				want := data
				if key == "small" {
					want = []byte("hello")
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("Get(%s) = %d bytes, %v; want the %d bytes put", key, len(got), err, len(want))
				}
			}
			for i, r := range rules {
				if got := proxy.Injected(i); got != r.Times {
					t.Errorf("rule %d injected %d faults, want %d", i, got, r.Times)
				}
			}
			// 4 parts of 5 MiB, one of them sent 2 more times after its
			// faults, and two retried after a SlowDown each.
			if got, want := proxy.Count(s3test.IsUploadPart), 4+1+2; got != want {
				t.Errorf("%d UploadPart requests, want %d", got, want)
			}
		})
	}
}

// TestS3ErrorsAreNotRetried checks that a 403 fails at the first attempt.
func TestS3ErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	b := openURL(t, "s3://"+srv.Bucket+"?endpoint="+proxy.URL+"&region=garage", s3cache.S3Options{
		Credentials: &s3cache.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong-secret-123"},
	})
	if _, err := b.Stat(t.Context(), "x"); !errors.Is(err, s3cache.ErrAccessDenied) {
		t.Fatalf("Stat error = %v, want ErrAccessDenied", err)
	}
	if n := proxy.Requests(); n != 1 {
		t.Errorf("%d requests for a 403, want 1 (no retries)", n)
	}
}

// TestS3PartSizeFollowsExpectedSize checks that a stream with a large
// ExpectedSize gets parts large enough to fit in 10 000: here so large
// that 12 MiB fits in one PutObject.
func TestS3PartSizeFollowsExpectedSize(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	b := openURL(t, "s3://"+srv.Bucket+"?endpoint="+proxy.URL+"&region=garage", srv.Options())
	data := make([]byte, 12<<20)
	err := b.Put(t.Context(), "k", bytes.NewReader(data), -1, s3cache.PutOptions{PartSize: 5 << 20, ExpectedSize: 200 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if n, p := proxy.Count(s3test.IsPutObject), proxy.Count(s3test.IsUploadPart); n != 1 || p != 0 {
		t.Errorf("%d PutObject and %d UploadPart requests, want 1 and 0", n, p)
	}
}

// blockingReader yields n zero bytes, then blocks until release is
// closed, then fails with errReleased.
type blockingReader struct {
	n       int
	release chan struct{}
}

var errReleased = errors.New("released")

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		<-r.release
		return 0, errReleased
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

// TestS3MultipartUploads checks the Multiparter extension on a Put held
// in the middle of its stream: its upload is listed, can be aborted, and
// the Put then fails without leaving anything.
func TestS3MultipartUploads(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			ctx := t.Context()
			const key = "nar/held.nar"
			r := &blockingReader{n: 5 << 20, release: make(chan struct{})}
			putErr := make(chan error, 1)
			go func() { putErr <- b.Put(ctx, key, r, -1, s3cache.PutOptions{PartSize: 5 << 20}) }()

			var got []s3cache.Upload
			for deadline := time.Now().Add(time.Minute); len(got) == 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				// MinIO lists the uploads of one exact key only, never of a
				// shorter prefix.
				if err := b.ListMultipartUploads(ctx, key, func(u s3cache.Upload) error { got = append(got, u); return nil }); err != nil {
					t.Fatalf("ListMultipartUploads: %v", err)
				}
			}
			if len(got) != 1 || got[0].Key != key || got[0].UploadID == "" || got[0].Initiated.IsZero() {
				t.Fatalf("ListMultipartUploads = %+v, want the one upload of %s", got, key)
			}
			if err := b.AbortMultipartUpload(ctx, got[0].Key, got[0].UploadID); err != nil {
				t.Fatalf("AbortMultipartUpload: %v", err)
			}
			got = nil
			if err := b.ListMultipartUploads(ctx, key, func(u s3cache.Upload) error { got = append(got, u); return nil }); err != nil || len(got) != 0 {
				t.Errorf("after abort, ListMultipartUploads = %+v, %v; want none", got, err)
			}
			close(r.release)
			// The Put fails: its reader fails, or (if part 1 was still
			// in flight when the upload was aborted) part 1 does.
			if err := <-putErr; !errors.Is(err, errReleased) && !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("Put error = %v, want the reader's error or ErrNotFound", err)
			}
			if _, err := b.Stat(ctx, key); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("Stat after the failed Put: %v, want ErrNotFound", err)
			}
			if err := b.AbortMultipartUpload(ctx, key, "no-such-upload-id"); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("aborting an unknown upload: error = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestS3WireHeaders pins what Garage needs on the wire: no flexible
// checksums or aws-chunked bodies on uploads, Content-MD5 on every upload
// and on DeleteObjects, path-style requests.
func TestS3WireHeaders(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	b := openURL(t, "s3://"+srv.Bucket+"?endpoint="+proxy.URL+"&region=garage", srv.Options())
	ctx := t.Context()
	if err := b.Put(ctx, "small", strings.NewReader("x"), 1, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "big", bytes.NewReader(make([]byte, 6<<20)), -1, s3cache.PutOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "small", "big"); err != nil {
		t.Fatal(err)
	}
	isUpload := func(r *http.Request) bool { return s3test.IsPutObject(r) || s3test.IsUploadPart(r) }
	isDelete := func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("delete") }
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
		want  int
	}{
		{"uploads", isUpload, 3},
		{"uploads with Content-MD5", func(r *http.Request) bool { return isUpload(r) && r.Header.Get("Content-MD5") != "" }, 3},
		{"uploads with a flexible checksum", func(r *http.Request) bool {
			return isUpload(r) && (r.Header.Get("X-Amz-Sdk-Checksum-Algorithm") != "" || r.Header.Get("X-Amz-Checksum-Crc32") != "")
		}, 0},
		{"aws-chunked uploads", func(r *http.Request) bool {
			return isUpload(r) && (strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") || r.Header.Get("X-Amz-Trailer") != "")
		}, 0},
		{"uploads with Expect: 100-continue (a round trip each)", func(r *http.Request) bool { return isUpload(r) && r.Header.Get("Expect") != "" }, 0},
		{"DeleteObjects with Content-MD5", func(r *http.Request) bool { return isDelete(r) && r.Header.Get("Content-MD5") != "" }, 1},
		{"requests not path-style", func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/"+srv.Bucket) }, 0},
	} {
		if got := proxy.Count(tc.match); got != tc.want {
			t.Errorf("%s: %d requests, want %d", tc.name, got, tc.want)
		}
	}
}

// TestS3CredentialChain opens buckets with Open, as the CLI does: the
// credentials come from the environment or from the URL's profile.
// (t.Setenv: not parallel.)
func TestS3CredentialChain(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	dir := t.TempDir()
	creds := dir + "/credentials"
	content := "[ci]\naws_access_key_id = " + srv.AccessKey + "\naws_secret_access_key = " + srv.SecretKey + "\n"
	if err := os.WriteFile(creds, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "eu-west-3") // the URL's region wins

	roundTrip := func(raw string) error {
		u, err := s3cache.ParseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s3cache.Open(t.Context(), u)
		if err != nil {
			return err
		}
		if err := b.Put(t.Context(), "k", strings.NewReader("v"), 1, s3cache.PutOptions{}); err != nil {
			return err
		}
		_, err = b.Stat(t.Context(), "k")
		return err
	}
	if err := roundTrip(srv.URL); err != nil {
		t.Errorf("with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: %v", err)
	}
	// profile= takes the profile's keys even when the environment has
	// others, as Nix does.
	t.Setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
	if err := roundTrip(srv.URL + "&profile=ci"); err != nil {
		t.Errorf("with profile=ci: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	err := roundTrip(srv.URL + "&profile=nosuch")
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("with profile=nosuch: error %v, want one naming the profile", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-123")
	if err := roundTrip(srv.URL); !errors.Is(err, s3cache.ErrAccessDenied) {
		t.Errorf("with a wrong AWS_SECRET_ACCESS_KEY: error %v, want ErrAccessDenied", err)
	}
}
