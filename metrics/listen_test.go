package metrics_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nixbucket/nixbucket/metrics"
)

func TestListenServesRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := metrics.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nixbucket_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	addr, err := metrics.Listen(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "nixbucket_test_total 3") {
		t.Fatalf("status %d, body lacks the counter:\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("no Go runtime metrics:\n%.500s", body)
	}
	resp2, err := http.Get("http://" + addr.String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("/other: status %d, want 404", resp2.StatusCode)
	}
}
