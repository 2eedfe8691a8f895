package s3test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to a request instead of forwarding it.
type Fault int

const (
	// SlowDown answers 503 with S3's SlowDown error, as a throttling
	// server does.
	SlowDown Fault = iota
	// InternalError answers 500 with S3's InternalError.
	InternalError
	// Reset reads the request, then resets the TCP connection without
	// answering.
	Reset
	// Stall holds the request for the rule's Delay, then forwards it: a
	// slow or overloaded server.
	Stall
	// StallBody forwards the request at once but pauses for the rule's
	// Delay once half its body has gone through: a transfer that stalls
	// mid-upload.
	StallBody
)

// DefaultStall is the Delay of a Stall or StallBody rule that gives none.
const DefaultStall = time.Second

// Rule injects Fault into the first Times requests that Match accepts.
type Rule struct {
	// Match selects requests; nil matches every request.
	Match func(*http.Request) bool
	// Fault is what the matching requests get.
	Fault Fault
	// Times is how many matching requests get the fault; the rest pass.
	Times int
	// Delay is how long a Stall or StallBody fault pauses; 0 means
	// DefaultStall.
	Delay time.Duration
}

// IsUploadPart matches the UploadPart requests of multipart uploads.
func IsUploadPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Has("partNumber")
}

// IsPutObject matches single-request object uploads (PutObject).
func IsPutObject(r *http.Request) bool {
	q := r.URL.Query()
	return r.Method == http.MethodPut && !q.Has("partNumber") && !q.Has("uploadId")
}

// IsMethod returns a matcher for requests with the given HTTP method.
func IsMethod(method string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method }
}

// FaultProxy is a reverse proxy on loopback that forwards requests to an
// S3 server, except those its rules select, which get a fault. The Host
// header is kept, so SigV4 signatures made for the proxy's address stay
// valid at the server.
type FaultProxy struct {
	// URL is the proxy's base URL, to use as the S3 endpoint.
	URL string

	mu       sync.Mutex
	rules    []Rule
	left     []int
	injected []int
	requests int
	seen     []*http.Request // method, URL and headers only
}

// NewFaultProxy starts a proxy in front of target (an http:// base URL),
// closed when the test ends.
func NewFaultProxy(t testing.TB, target string, rules ...Rule) *FaultProxy {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatalf("s3test: fault proxy target %q: %v", target, err)
	}
	p := &FaultProxy{rules: rules, left: make([]int, len(rules)), injected: make([]int, len(rules))}
	for i, r := range rules {
		p.left[i] = r.Times
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host // the signature covers the client's Host
		},
		// Requests the client gives up on are expected here; keep them
		// out of the test output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule := p.pick(r)
		if rule < 0 {
			rp.ServeHTTP(w, r)
			return
		}
		delay := p.rules[rule].Delay
		if delay <= 0 {
			delay = DefaultStall
		}
		switch p.rules[rule].Fault {
		case Stall:
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
			rp.ServeHTTP(w, r)
			return
		case StallBody:
			r.Body = &stallingBody{r: r.Body, after: max(r.ContentLength/2, 1), delay: delay, ctx: r.Context()}
			rp.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		switch p.rules[rule].Fault {
		case SlowDown:
			s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		case InternalError:
			s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		case Reset:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(http.ErrAbortHandler)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with RST
			}
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// pick counts the request and returns the index of the rule that faults
// it, or -1.
func (p *FaultProxy) pick(r *http.Request) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	p.seen = append(p.seen, &http.Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone()})
	for i, rule := range p.rules {
		if p.left[i] > 0 && (rule.Match == nil || rule.Match(r)) {
			p.left[i]--
			p.injected[i]++
			return i
		}
	}
	return -1
}

// Injected returns how many faults rule i (in NewFaultProxy's order) has
// injected so far.
func (p *FaultProxy) Injected(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[i]
}

// Requests returns how many requests the proxy has received.
func (p *FaultProxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// stallingBody is a request body that pauses once, after its first
// `after` bytes have been read (at the end, for a shorter body).
type stallingBody struct {
	r     io.ReadCloser
	after int64
	delay time.Duration
	ctx   context.Context
	read  int64
	done  bool
}

func (s *stallingBody) Read(p []byte) (int, error) {
	if !s.done && s.read >= s.after {
		s.stall()
	}
	if !s.done {
		p = p[:min(int64(len(p)), s.after-s.read)]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	if err == io.EOF && !s.done {
		s.stall()
	}
	return n, err
}

func (s *stallingBody) stall() {
	s.done = true
	select {
	case <-time.After(s.delay):
	case <-s.ctx.Done():
	}
}

func (s *stallingBody) Close() error { return s.r.Close() }

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>`+code+`</Code><Message>`+msg+`</Message></Error>`)
}

// Count returns how many requests the proxy has received that match
// accepts (faulted or not); match sees their method, URL and headers.
func (p *FaultProxy) Count(match func(*http.Request) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.seen {
		if match(r) {
			n++
		}
	}
	return n
}
