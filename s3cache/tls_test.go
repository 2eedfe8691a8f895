package s3cache_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
)

// TestNginxClientCertificatePages turns nginx's answers to a missing or
// refused client certificate (ssl_verify_client on: a 400 and an HTML
// page, after the handshake) into one line saying what to set, without
// retrying.
func TestNginxClientCertificatePages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		page string
		says string
	}{
		{"No required SSL certificate was sent", "requires a TLS client certificate"},
		{"The SSL certificate error", "refused the TLS client certificate"},
	} {
		t.Run(tc.page, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Server", "nginx")
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte("<html>\r\n<head><title>400 " + tc.page + "</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n" +
					"<center>" + tc.page + "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
			}))
			defer srv.Close()
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool}
			b := openURL(t, "s3://nix?endpoint="+srv.URL+"&region=garage", s3cache.S3Options{
				Credentials: &s3cache.Credentials{AccessKeyID: "id", SecretAccessKey: "secret"},
				HTTPClient:  &http.Client{Transport: tr},
			})
			for _, op := range []struct {
				name     string
				call     func() error
				requests int32 // a HEAD has no page: it is asked for once
			}{
				{"Stat", func() error { _, err := b.Stat(t.Context(), "nix-cache-info"); return err }, 2},
				{"Get", func() error { _, err := b.Get(t.Context(), "nix-cache-info"); return err }, 1},
			} {
				requests.Store(0)
				err := op.call()
				var re *s3cache.RemoteError
				if err == nil || !strings.Contains(err.Error(), tc.says) || !errors.As(err, &re) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s = %v; want one line saying %q", op.name, err, tc.says)
				}
				if n := requests.Load(); n != op.requests {
					t.Errorf("%s: %d requests, want %d (no retry)", op.name, n, op.requests)
				}
			}
		})
	}
}
