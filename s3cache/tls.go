package s3cache

// Mutual TLS: the client certificate of tls-certificate= and
// tls-private-key=, and handshakes refused by either side.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// loadClientCertificate reads the client certificate and key that u names
// (PEM files), or returns nil when u names none. The error names the
// files, never their contents.
func loadClientCertificate(u *URL) (*tls.Certificate, error) {
	if u.TLSCertificate == "" && u.TLSPrivateKey == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(u.TLSCertificate, u.TLSPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("loading the client certificate tls-certificate=%s with tls-private-key=%s: %w",
			u.TLSCertificate, u.TLSPrivateKey, err)
	}
	return &cert, nil
}

// withClientCertificate returns t presenting cert in its TLS handshakes.
func withClientCertificate(t *http.Transport, cert *tls.Certificate) *http.Transport {
	if cert == nil {
		return t
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	return t
}

// TLSError is a TLS handshake that one side refused: the server asked for
// a client certificate that was not given, or refused the one given, or
// the client could not verify the server's certificate. Retrying does not
// heal it.
type TLSError struct {
	// Msg says who refused what, and what to set.
	Msg string
	// Err is the handshake's error.
	Err error
}

// Error returns the one-line message.
func (e *TLSError) Error() string { return e.Msg }

// Unwrap returns the handshake's error, less the *net.OpError that would
// make it look like an unreachable server.
func (e *TLSError) Unwrap() error {
	var ne *net.OpError
	if errors.As(e.Err, &ne) {
		return ne.Err
	}
	return e.Err
}

// classifyTLS turns a handshake refused by the server (a TLS alert about
// certificates) or by this client (the server's certificate did not
// verify) into a *TLSError saying what to do; other errors are returned
// as they are. withCert says whether a client certificate was given.
func classifyTLS(err error, withCert bool) error {
	if err == nil {
		return nil
	}
	var (
		ne       *net.OpError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid):
		return &TLSError{Err: err, Msg: "the server's TLS certificate is not trusted (" + certReason(err) +
			"): for a private CA or a self-signed endpoint, point SSL_CERT_FILE at its PEM certificate"}
	case errors.As(err, &ne) && ne.Op == "remote error":
		alert := strings.TrimPrefix(ne.Err.Error(), "tls: ")
		switch {
		case !withCert && (alert == "certificate required" || alert == "handshake failure" || alert == "bad certificate"):
			return &TLSError{Err: err, Msg: "the server requires a TLS client certificate (" + alert +
				"): give tls-certificate=FILE&tls-private-key=FILE in the store URL"}
		case withCert && (strings.Contains(alert, "certificate") || alert == "decrypt error"):
			return &TLSError{Err: err, Msg: "the server refused the TLS client certificate of tls-certificate= (" + alert + ")"}
		}
	}
	return err
}

// certReason is the x509 reason of a failed verification, in a few words.
func certReason(err error) string {
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) && verify.Err != nil {
		err = verify.Err
	}
	return strings.TrimPrefix(err.Error(), "x509: ")
}

// nginx answers a request whose client certificate is missing or refused
// (ssl_verify_client on) with a 400 and an HTML page, after the handshake.
const (
	nginxNoCert  = "No required SSL certificate was sent"
	nginxBadCert = "The SSL certificate error"
)

// tlsTransport turns refused handshakes into *TLSErrors, and so nginx's
// 400 pages about client certificates.
type tlsTransport struct {
	next     http.RoundTripper
	withCert bool
}

func (t *tlsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, classifyTLS(err, t.withCert)
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return resp, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if req.Method == http.MethodHead {
		// No page in a HEAD's answer: ask for it, unsigned (nginx
		// answers before any S3 server sees the request).
		head = t.page(req)
	}
	var msg string
	switch {
	case bytes.Contains(head, []byte(nginxNoCert)):
		msg = "the server requires a TLS client certificate (HTTP 400: " + nginxNoCert + "): give tls-certificate=FILE&tls-private-key=FILE in the store URL"
	case bytes.Contains(head, []byte(nginxBadCert)):
		msg = "the server refused the TLS client certificate of tls-certificate= (HTTP 400: " + nginxBadCert + ")"
	default:
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	return nil, &TLSError{Msg: msg, Err: errors.New(resp.Status)}
}

// page GETs req's URL without credentials and returns the start of the
// answer's body, nil if none: the page of a proxy that answered a HEAD
// with an HTML 400.
func (t *tlsTransport) page(req *http.Request) []byte {
	probe, err := http.NewRequestWithContext(req.Context(), http.MethodGet, req.URL.String(), nil)
	if err != nil {
		return nil
	}
	resp, err := t.next.RoundTrip(probe)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		return nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return head
}
