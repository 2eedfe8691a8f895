package narinfo_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/signing"
)

var update = flag.Bool("update", false, "regenerate testdata/nix-2.8 with the installed Nix")

const fixtureDir = "testdata/nix-2.8"

// fixture is testdata/nix-2.8/fixture.json: what Nix said about the
// narinfos it wrote next to it.
type fixture struct {
	NixVersion string        `json:"nixVersion"`
	StoreDir   string        `json:"storeDir"`
	PublicKey  string        `json:"publicKey"`
	PathInfo   []nixPathInfo `json:"pathInfo"`
}

// TestFixtures checks the narinfos real Nix wrote into testdata/nix-2.8
// (see testdata/README.md): each parses to what `nix path-info --json` read
// from it, String() reproduces it byte for byte, and its signature verifies
// over our fingerprint. With -update it first regenerates them.
func TestFixtures(t *testing.T) {
	if *update {
		updateFixtures(t)
	}
	b, err := os.ReadFile(filepath.Join(fixtureDir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	pub, err := signing.ParsePublicKey(fx.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.PathInfo) == 0 {
		t.Fatal("fixture.json lists no paths")
	}
	for _, info := range fx.PathInfo {
		t.Run(filepath.Base(info.Path), func(t *testing.T) {
			t.Parallel()
			text := readNarinfo(t, fixtureDir, info.Path)
			n, err := narinfo.Parse(bytes.NewReader(text), narinfo.WithStoreDir(fx.StoreDir))
			if err != nil {
				t.Fatal(err)
			}
			compareWithNix(t, fx.StoreDir, n, info, true)
			if got := n.String(); got != string(text) {
				t.Errorf("String() differs from Nix's file:\n got: %q\nwant: %q", got, text)
			}
			fp, err := n.Fingerprint()
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Sigs) != 1 || !signing.Verify(pub, []byte(fp), n.Sigs[0]) {
				t.Errorf("Sigs %q: want one that verifies with %s over %q", n.Sigs, fx.PublicKey, fp)
			}
		})
	}
}

// updateFixtures rewrites testdata/nix-2.8 from the installed Nix.
func updateFixtures(t *testing.T) {
	sd := nixStoreDir(t)
	paths := testPaths(t, "fixture")
	keyDir := t.TempDir()
	sk, pk := filepath.Join(keyDir, "sk"), filepath.Join(keyDir, "pk")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", "narinfo-fixture-1", sk, pk)
	cache := copyToCache(t, "compression=xz&secret-key="+sk, paths)

	if err := os.RemoveAll(fixtureDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pkText, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	fx := fixture{
		NixVersion: nixtest.Run(t, "nix", "--version"),
		StoreDir:   sd,
		PublicKey:  string(pkText),
	}
	for _, p := range paths {
		name := filepath.Base(p)[:32] + ".narinfo"
		if err := os.WriteFile(filepath.Join(fixtureDir, name), readNarinfo(t, cache, p), 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := queryNix(t, "file://"+cache, p)
		if err != nil {
			t.Fatal(err)
		}
		fx.PathInfo = append(fx.PathInfo, info)
	}
	out, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixtureDir, "fixture.json"), append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
