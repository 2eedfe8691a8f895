package serve

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nixbucket/nixbucket/layout"
)

// serveMetrics are a handler's Prometheus metrics (Options.Metrics).
// Every label has a bounded set of values: the method (GET, HEAD, PUT or
// other), the kind of key (layout.Kind, never the key itself), the status
// code, the bucket operation.
type serveMetrics struct {
	requests   *prometheus.CounterVec   // method, kind, code
	sent       *prometheus.CounterVec   // kind
	received   *prometheus.CounterVec   // kind
	inFlight   prometheus.Gauge         //
	duration   *prometheus.HistogramVec // method, kind
	backend    *prometheus.HistogramVec // operation
	backendErr *prometheus.CounterVec   // operation
}

// Bucket operations, the values of the operation label.
const (
	opHead   = "head"   // Stat
	opGet    = "get"    // Get, GetWithInfo, GetRange: until the body starts
	opPut    = "put"    // Put, the body included
	opList   = "list"   // a whole listing, every page
	opDelete = "delete" // Delete
	opClock  = "clock"  // the server's clock (the cache lock's)
)

// newMetrics registers a handler's metrics with reg. Metrics already
// registered there (by another handler) are shared.
func newMetrics(reg prometheus.Registerer) *serveMetrics {
	return &serveMetrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixbucket_serve_requests_total",
			Help: "HTTP requests answered, by method (GET, HEAD, PUT, other), kind of key (narinfo, nar, listing, log, cache-info, …) and status code.",
		}, []string{"method", "kind", "code"})),
		sent: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixbucket_serve_response_bytes_total",
			Help: "Response body bytes sent, by kind of key.",
		}, []string{"kind"})),
		received: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixbucket_serve_received_bytes_total",
			Help: "Request body bytes read from pushes (PUT, with --accept-push), by kind of key.",
		}, []string{"kind"})),
		inFlight: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nixbucket_serve_requests_in_flight",
			Help: "HTTP requests being answered.",
		})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nixbucket_serve_request_duration_seconds",
			Help:    "Time to answer an HTTP request, the body sent, by method and kind of key.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8), // 5ms to 82s
		}, []string{"method", "kind"})),
		backend: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nixbucket_serve_backend_request_duration_seconds",
			Help:    "Latency of the bucket's operations, by operation: head, get (until the body starts), put (the body included), list (every page), delete, clock.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms to 16s
		}, []string{"operation"})),
		backendErr: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixbucket_serve_backend_errors_total",
			Help: "Bucket operations that failed (a missing key is not a failure), by operation.",
		}, []string{"operation"})),
	}
}

// register registers c with reg, or returns the equal collector already
// registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err) // a programming error: names and labels are constants
	}
	return c
}

// methodLabel is a request method as a label value: one of a few.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut:
		return m
	}
	return "other"
}

// kindLabel is the kind of key a request path names: one of layout's
// kinds.
func kindLabel(p string) string { return string(layout.KindOf(strings.TrimPrefix(p, "/"))) }

// begin counts a request in flight and, for a push, its body's bytes; the
// function it returns counts the answered request.
func (m *serveMetrics) begin(r *http.Request) func(status int, sent int64) {
	start := time.Now()
	m.inFlight.Inc()
	method, kind := methodLabel(r.Method), kindLabel(r.URL.Path)
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody && r.Method != http.MethodGet && r.Method != http.MethodHead {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	return func(status int, sent int64) {
		m.inFlight.Dec()
		m.requests.WithLabelValues(method, kind, strconv.Itoa(status)).Inc()
		m.sent.WithLabelValues(kind).Add(float64(sent))
		if body != nil {
			m.received.WithLabelValues(kind).Add(float64(body.n))
		}
		m.duration.WithLabelValues(method, kind).Observe(time.Since(start).Seconds())
	}
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
