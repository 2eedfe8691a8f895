package main

import (
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/signing"
)

// TestMutualTLS pushes and verifies through an HTTPS front that requires
// and verifies client certificates, in front of a real MinIO: with
// tls-certificate= and tls-private-key= both work; without a certificate,
// with one of another CA, or without trusting the server's CA, each fails
// at once with one line saying what to set.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-mtls")
	lib := nixtest.Build(t, f, "lib")[0]
	key, _ := signing.GenerateSecretKey("cli-mtls-1")
	srv := s3test.Start(t, s3test.MinIO)
	front := s3test.NewTLSFront(t, srv.Endpoint)
	base := "s3://" + srv.Bucket + "?endpoint=" + front.URL + "&region=" + s3test.Region
	good := base + "&tls-certificate=" + front.ClientCert + "&tls-private-key=" + front.ClientKey
	trusting := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode(), "SSL_CERT_FILE="+front.CAFile)

	if code, _, stderr := runBin(t, trusting, "push", "--cache", good, lib); code != 0 {
		t.Fatalf("push with the client certificate: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := runBin(t, trusting, "verify", "--cache", good, "--deep", "--trusted-public-key", key.PublicKey().String()); code != 0 {
		t.Fatalf("verify with the client certificate: exit %d: %s%s", code, stdout, stderr)
	}

	for _, tc := range []struct {
		name string
		url  string
		env  []string
		says []string
		code int
	}{
		{"no certificate", base, trusting, []string{"requires a TLS client certificate", "tls-certificate=FILE&tls-private-key=FILE"}, exitRemote},
		{"another CA's certificate", base + "&tls-certificate=" + front.WrongCert + "&tls-private-key=" + front.WrongKey, trusting,
			[]string{"refused the TLS client certificate"}, exitRemote},
		{"server not trusted", good, append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode()),
			[]string{"server's TLS certificate is not trusted", "SSL_CERT_FILE"}, exitRemote},
		{"key of another certificate", base + "&tls-certificate=" + front.ClientCert + "&tls-private-key=" + front.WrongKey, trusting,
			[]string{"loading the client certificate", "private key does not match"}, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"push", "--cache", tc.url, lib},
				{"verify", "--cache", tc.url, "--trusted-public-key", key.PublicKey().String()},
			} {
				code, stdout, stderr := runBin(t, tc.env, args...)
				t.Logf("%s: %s", args[0], strings.TrimSpace(stderr))
				if code != tc.code {
					t.Errorf("%s: exit %d, want %d: %s%s", args[0], code, tc.code, stdout, stderr)
				}
				oneErrorLine(t, stderr)
				for _, s := range tc.says {
					if !strings.Contains(stderr, s) {
						t.Errorf("%s: error %q does not say %q", args[0], stderr, s)
					}
				}
				if strings.Contains(stderr, "PRIVATE KEY") || strings.Contains(stderr, "retry") {
					t.Errorf("%s: error %q shows a key or retried", args[0], stderr)
				}
			}
		})
	}
}
