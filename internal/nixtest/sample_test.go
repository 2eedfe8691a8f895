package nixtest_test

import (
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
)

func TestSampleBuilds(t *testing.T) {
	f := nixtest.Sample(t, 50, "sample-test")
	out := nixtest.Build(t, f, "all")
	if len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	dag := 0
	for _, p := range nixtest.Lines(t, "nix-store", "-qR", out[0]) {
		if strings.Contains(p, "-dagsample-test-") {
			dag++
		}
	}
	if dag != 50 {
		t.Errorf("closure has %d DAG nodes, want 50", dag)
	}
	drv := nixtest.Instantiate(t, f, "unbuilt")
	if len(drv) != 1 || !strings.HasSuffix(drv[0], ".drv") {
		t.Fatalf("instantiate gave %v, want one .drv", drv)
	}
}
