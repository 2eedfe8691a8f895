package push_test

import (
	"strings"
	"testing"

	"github.com/dustin/go-humanize"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
)

// maxRSS is the peak resident memory allowed to a push or verify of any
// size: the pipeline holds part buffers and compressor windows, never a
// whole NAR.
const maxRSS = 200 << 20

// gigExpr is one 1 GiB file of random bytes. No salt: it is built once per
// machine.
var gigExpr = nixtest.Derivation("nixbucket-robust-1gib", "head -c 1073741824 /dev/urandom > $out")

// TestMemoryBounded pushes a store path of one 1 GiB file with the real
// CLI (zstd) and checks the peak RSS of the process, then does the same
// for a deep verify, which downloads and decompresses it. The CLI runs
// under a small wrapper process, for an exact figure (see maxRSSFileEnv).
func TestMemoryBounded(t *testing.T) {
	t.Parallel()
	gig := nixtest.Build(t, nixtest.WriteExpr(t, gigExpr))[0]
	srv := s3test.Start(t, s3test.VersityGW)
	key := newKey(t, "memory-test-1")
	env := cliEnv(t, srv, key)

	r := runCLIMeasured(t, true, env, "push", "--cache", srv.URL, "--compression", "zstd", gig)
	if r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("push of 1 GiB: peak RSS %s in %v: %s", humanize.IBytes(uint64(r.maxRSS)), r.elapsed.Round(1e6), strings.TrimSpace(r.stdout))
	if r.maxRSS <= 0 || r.maxRSS >= maxRSS {
		t.Errorf("push peak RSS %s, want < %s", humanize.IBytes(uint64(r.maxRSS)), humanize.IBytes(maxRSS))
	}

	r = runCLIMeasured(t, true, env, "verify", "--cache", srv.URL, "--deep", "--trusted-public-key", key.PublicKey().String())
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: 1 narinfos") {
		t.Fatalf("verify: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("deep verify of 1 GiB: peak RSS %s in %v", humanize.IBytes(uint64(r.maxRSS)), r.elapsed.Round(1e6))
	if r.maxRSS <= 0 || r.maxRSS >= maxRSS {
		t.Errorf("verify peak RSS %s, want < %s", humanize.IBytes(uint64(r.maxRSS)), humanize.IBytes(maxRSS))
	}
}
