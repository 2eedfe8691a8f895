package s3test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFront is an HTTPS reverse proxy on loopback in front of an S3
// server that requires and verifies client certificates (mutual TLS),
// with its certificates and keys written as PEM files.
type TLSFront struct {
	// URL is the front's https://127.0.0.1:PORT base URL.
	URL string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate and the client certificate the front accepts.
	CAFile string
	// ClientCert and ClientKey are a client certificate the front accepts.
	ClientCert, ClientKey string
	// WrongCert and WrongKey are a client certificate signed by another
	// CA, which the front refuses.
	WrongCert, WrongKey string
}

// NewTLSFront starts a TLS front in front of target (an http:// base
// URL), closed when the test ends.
func NewTLSFront(t testing.TB, target string) *TLSFront {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatalf("s3test: TLS front target %q: %v", target, err)
	}
	dir := t.TempDir()
	ca, caKey := newCA(t, "nixbucket test CA")
	other, otherKey := newCA(t, "another CA")
	f := &TLSFront{CAFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, f.CAFile, "CERTIFICATE", ca.Raw)
	serverDER, serverKey := issue(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = writePair(t, dir, "client", issue2(t, ca, caKey))
	f.WrongCert, f.WrongKey = writePair(t, dir, "wrong", issue2(t, other, otherKey))

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host // the signature covers the client's Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

type keyPair struct {
	der []byte
	key *ecdsa.PrivateKey
}

func issue2(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey) keyPair {
	der, key := issue(t, ca, caKey, "", x509.ExtKeyUsageClientAuth)
	return keyPair{der, key}
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// issue returns a certificate signed by ca for ip (a server) or for a
// client (ip "").
func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ip string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "nixbucket test " + ip},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if ip != "" {
		tmpl.IPAddresses = []net.IP{net.ParseIP(ip)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePair(t testing.TB, dir, name string, p keyPair) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", p.der)
	der, err := x509.MarshalECPrivateKey(p.key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "EC PRIVATE KEY", der)
	return certFile, keyFile
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Transport returns an HTTP transport that trusts the front's CA, for
// tests that cannot set SSL_CERT_FILE (Go reads it once per process).
func (f *TLSFront) Transport(t testing.TB) *http.Transport {
	t.Helper()
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return tr
}
