package s3cache

// Mutual TLS: the client certificate of tls-certificate= and
// tls-private-key=, and handshakes refused by either side.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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
		case withCert && strings.Contains(alert, "certificate") || alert == "decrypt error":
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

// tlsTransport turns refused handshakes into *TLSErrors.
type tlsTransport struct {
	next     http.RoundTripper
	withCert bool
}

func (t *tlsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	return resp, classifyTLS(err, t.withCert)
}
