package s3test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Toxi is Shopify's toxiproxy, run in this process, as a TCP proxy in
// front of a server: toxics added to it (timeout, limit_data, slicer,
// reset_peer, latency, …) act on the connections that go through it,
// including those already open.
type Toxi struct {
	// Endpoint is the proxy's base URL, http://127.0.0.1:PORT.
	Endpoint string

	proxy *toxiproxy.Proxy
}

// NewToxi starts a proxy in front of the server at endpoint (a base URL,
// http://HOST:PORT) on a free loopback port, and stops it when the test
// ends. In -short mode it skips the test instead.
func NewToxi(t testing.TB, endpoint string) *Toxi {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs toxiproxy")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("s3test: toxiproxy upstream %q: %v", endpoint, err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "s3", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatalf("s3test: starting toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Toxi{Endpoint: "http://" + p.Listen, proxy: p}
}

// StoreURL returns the store URL of bucket on srv, through the proxy.
func (x *Toxi) StoreURL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + x.Endpoint + "&region=" + Region
}

// Toxic adds a toxic named name of type typ ("timeout", "limit_data",
// "slicer", "reset_peer", "latency", …) to the stream ("downstream": from
// the server, "upstream": to it) with the given attributes, as
// toxiproxy's API takes them (e.g. {"timeout": 0}).
func (x *Toxi) Toxic(t testing.TB, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		t.Fatalf("s3test: adding toxic %s: %v", name, err)
	}
}

// RemoveToxic removes the toxic named name.
func (x *Toxi) RemoveToxic(t testing.TB, name string) {
	t.Helper()
	if err := x.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("s3test: removing toxic %s: %v", name, err)
	}
}

// Disable closes the proxy's port and every connection through it, as a
// server that goes down: connections are refused until Enable.
func (x *Toxi) Disable() { x.proxy.Stop() }

// Enable opens the proxy's port again, on the same address.
func (x *Toxi) Enable(t testing.TB) {
	t.Helper()
	if err := x.proxy.Start(); err != nil {
		t.Fatalf("s3test: restarting toxiproxy: %v", err)
	}
}
