package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// daemonSocket is the socket of the nix-daemon TestMain starts for this
// package's tests; it serves the same /nix store as the database.
var daemonSocket string

// tmpDir lives as long as the test binary.
var tmpDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run()) // a helper run by a test: no daemon of its own
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // -short starts no nix-daemon
	}
	tmp, err := os.MkdirTemp("", "storetest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	tmpDir = tmp
	daemonSocket = filepath.Join(tmp, "socket")
	stop, err := nixtest.StartDaemon(daemonSocket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting nix-daemon (apt-get install nix-bin):", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// fixtureExpr builds the test's store paths. NONCE makes `unbuilt`,
// `fresh` and `signed` new derivations on every run, so that unbuilt's
// output is never valid, fresh's build really registers a path and signed
// has exactly the signatures this run gives it.
const fixtureExpr = `
let
  drv = name: script: extra: derivation ({ inherit name; system = builtins.currentSystem;
    builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ]; } // extra);
in rec {
  note = builtins.toFile "store-test-note" "hello from the store test\n";
  dep = drv "store-test-dep" "echo dep > $out" {};
  self = drv "store-test-self" "mkdir $out; echo $out > $out/me" {};
  top = drv "store-test-top" "mkdir $out; ln -s ${dep} $out/dep; cat ${note} > $out/note; echo ${note} > $out/note-path" {};
  multi = drv "store-test-multi" "mkdir $out $dev; echo ${dep} > $out/d; echo $out > $dev/o" { outputs = [ "out" "dev" ]; };
  unbuilt = drv "store-test-unbuilt" "echo NONCE > $out" {};
  fresh = drv "store-test-fresh" "echo NONCE > $out" {};
  signed = drv "store-test-signed" "mkdir $out; echo NONCE > $out/signed; ln -s ${dep} $out/dep" {};
}
`

// fixture holds the paths the tests query.
type fixture struct {
	file    string   // the expression
	note    string   // builtins.toFile: text content-addressed
	dep     string   // no references
	self    string   // refers to itself
	top     string   // refers to dep and note
	multi   string   // out output of a two-output derivation
	dev     string   // dev output, refers to multi
	topDrv  string   // a .drv whose outputs are built
	multDrv string   // a .drv with two built outputs
	unbuilt string   // a .drv whose output is not built
	signed  string   // signed with two keys by nix store sign; refers to dep
	sigs    []string // the two signatures, as nix path-info shows them
	valid   []string // every valid path above
}

var (
	fixOnce sync.Once
	fix     *fixture
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs Nix")
	}
	if tmpDir == "" {
		t.Fatal("getFixture outside TestMain's nix-daemon run: no directory for the fixture")
	}
	fixOnce.Do(func() {
		nonce := make([]byte, 8)
		_, _ = rand.Read(nonce)
		f := &fixture{file: filepath.Join(tmpDir, "fixture.nix")}
		expr := strings.ReplaceAll(fixtureExpr, "NONCE", hex.EncodeToString(nonce))
		if err := os.WriteFile(f.file, []byte(expr), 0o644); err != nil {
			t.Fatal(err)
		}
		built := nixtest.Build(t, f.file, "dep", "self", "top", "multi.out", "multi.dev")
		if len(built) != 5 {
			t.Fatalf("nix-build printed %q, want 5 paths", built)
		}
		f.dep, f.self, f.top, f.multi, f.dev = built[0], built[1], built[2], built[3], built[4]
		drvs := nixtest.Instantiate(t, f.file, "top", "multi", "unbuilt")
		f.topDrv, f.multDrv, f.unbuilt = drvs[0], drvs[1], drvs[2]
		f.note = strings.Trim(nixtest.Run(t, "nix-instantiate", "--eval", f.file, "-A", "note"), `"`)
		f.signed = nixtest.Build(t, f.file, "signed")[0]
		f.sigs = nixtest.Sign(t, f.signed, "store-test-b-1", "store-test-a-1")
		f.valid = []string{f.note, f.dep, f.self, f.top, f.multi, f.dev, f.topDrv, f.multDrv, f.unbuilt, f.signed}
		fix = f
	})
	if fix == nil {
		t.Fatal("building the fixture failed in an earlier test")
	}
	return fix
}

// backends opens both back ends over the same store, closed at the end.
func backends(t testing.TB) map[string]store.Store {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDB(ctx, store.DBPath(), storepath.DefaultDir())
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	d, err := store.OpenDaemon(ctx, daemonSocket, storepath.DefaultDir())
	if err != nil {
		t.Fatalf("OpenDaemon: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return map[string]store.Store{"db": db, "daemon": d}
}
