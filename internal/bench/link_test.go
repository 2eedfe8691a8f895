//go:build bench

package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestBenchLink checks that the benchmark's link is a delay line, not a
// bandwidth limit: it uploads and downloads 1 GiB through a link at 0 ms
// and each RTT of $NIXBUCKET_BENCH_RTT to a server that discards or makes
// up the bytes, and reports the throughput and the time of a small request
// on an open connection. The transfer should take about as long at every
// RTT (measured on 2 loaded cores: 130–180 MB/s at 0, 2, 20 and 80 ms
// alike, the proxies' CPU being the limit), and a small request one RTT.
func TestBenchLink(t *testing.T) {
	const size = 1 << 30
	zeros := make([]byte, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			io.Copy(io.Discard, r.Body)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		for n > 0 {
			k, err := w.Write(zeros[:min(n, len(zeros))])
			if err != nil {
				return
			}
			n -= k
		}
	}))
	t.Cleanup(srv.Close)
	l := newLink(t, srv.URL)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	do := func(method string, n int) time.Duration {
		t.Helper()
		var body io.Reader
		if method == http.MethodPut {
			body = io.LimitReader(zeroReader{}, int64(n))
		}
		req, err := http.NewRequest(method, l.URL+"/x?n="+strconv.Itoa(n), body)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.ContentLength = int64(n)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || (method == http.MethodGet && got != int64(n)) {
			t.Fatalf("%s %d bytes: got %d, %v", method, n, got, err)
		}
		return time.Since(start)
	}
	mbps := func(d time.Duration) string { return fmt.Sprintf("%.0f MB/s", size/1e6/d.Seconds()) }
	for _, rtt := range rtts(t) {
		l.setRTT(t, rtt)
		do(http.MethodGet, 1) // a connection already open, as the tools keep theirs
		small := do(http.MethodGet, 1)
		up, down := do(http.MethodPut, size), do(http.MethodGet, size)
		t.Logf("link at %2d ms: small request %6.1f ms; 1 GiB up %6.2f s (%s), down %6.2f s (%s)",
			rtt, float64(small.Microseconds())/1000, up.Seconds(), mbps(up), down.Seconds(), mbps(down))
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
