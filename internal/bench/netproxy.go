//go:build bench

package bench

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
)

// link is the network between a client and a server in the benchmark:
// toxiproxy adding half the round trip to each direction (a delay line:
// latency, not bandwidth; connections stay open), then a reverse proxy
// that counts the client's requests and connections, then the server.
type link struct {
	// URL is what the client talks to (toxiproxy's address).
	URL string

	toxi          *s3test.Toxi
	requests      atomic.Int64
	conns         atomic.Int64
	rtt           int // ms
	target        *url.URL
	countingProxy *httptest.Server
}

// newLink puts a counting proxy and toxiproxy in front of the server at
// target (an http:// base URL), with no latency yet.
func newLink(t *testing.T, target string) *link {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l := &link{target: tu}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, 1024
	tr.DisableCompression = true
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host // SigV4 signs the client's Host
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	l.countingProxy = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.requests.Add(1)
		rp.ServeHTTP(w, r)
	}))
	l.countingProxy.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			l.conns.Add(1)
		}
	}
	l.countingProxy.Start()
	t.Cleanup(l.countingProxy.Close)
	l.toxi = s3test.NewToxi(t, l.countingProxy.URL)
	l.URL = l.toxi.Endpoint
	return l
}

// setRTT sets the added round-trip time: half of it on each direction.
func (l *link) setRTT(t *testing.T, ms int) {
	t.Helper()
	if l.rtt > 0 {
		l.toxi.RemoveToxic(t, "up")
		l.toxi.RemoveToxic(t, "down")
	}
	l.rtt = ms
	if ms > 0 {
		l.toxi.Toxic(t, "up", "latency", "upstream", map[string]any{"latency": ms / 2})
		l.toxi.Toxic(t, "down", "latency", "downstream", map[string]any{"latency": ms - ms/2})
	}
}

// counts returns the requests and connections seen so far.
func (l *link) counts() (requests, conns int64) { return l.requests.Load(), l.conns.Load() }
