package s3test_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

func TestStart(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			if !strings.HasPrefix(srv.URL, "s3://"+srv.Bucket+"?endpoint="+srv.Endpoint) {
				t.Errorf("URL = %s, want s3://%s?endpoint=%s…", srv.URL, srv.Bucket, srv.Endpoint)
			}
			// The created buckets exist and are empty; a missing one does not.
			for _, bucket := range []string{srv.Bucket, srv.NewBucket(t)} {
				n := 0
				err := srv.Open(t, bucket).List(t.Context(), "", func(s3cache.ObjectInfo) error { n++; return nil })
				if err != nil || n != 0 {
					t.Errorf("List(%s) = %d objects, %v; want an empty bucket", bucket, n, err)
				}
			}
			err := srv.Open(t, "absent").List(t.Context(), "", func(s3cache.ObjectInfo) error { return nil })
			if !errors.Is(err, s3cache.ErrNoSuchBucket) {
				t.Errorf("List of a bucket never created: %v, want ErrNoSuchBucket", err)
			}
		})
	}
}

func TestFaultProxy(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host="+r.Host)
	}))
	defer backend.Close()
	p := s3test.NewFaultProxy(t, backend.URL,
		s3test.Rule{Match: s3test.IsMethod(http.MethodGet), Fault: s3test.SlowDown, Times: 2},
		s3test.Rule{Fault: s3test.Reset, Times: 1},
	)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (int, string, error) {
		resp, err := client.Get(p.URL + "/b/k")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	for i := range 2 {
		code, body, err := get()
		if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "<Code>SlowDown</Code>") {
			t.Errorf("request %d: %d %q %v; want 503 SlowDown", i, code, body, err)
		}
	}
	if code, body, err := get(); err == nil {
		t.Errorf("request 3: %d %q; want a connection error", code, body)
	}
	code, body, err := get()
	if want := "host=" + strings.TrimPrefix(p.URL, "http://"); err != nil || code != http.StatusOK || body != want {
		t.Errorf("request 4: %d %q %v; want 200 %q (the client's Host passed through)", code, body, err, want)
	}
	if p.Injected(0) != 2 || p.Injected(1) != 1 || p.Requests() != 4 || p.Count(s3test.IsMethod(http.MethodGet)) != 4 {
		t.Errorf("injected %d and %d of %d requests, want 2 and 1 of 4", p.Injected(0), p.Injected(1), p.Requests())
	}
}
