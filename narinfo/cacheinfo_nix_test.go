package narinfo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestCacheInfoAgreesWithNix has Nix open file:// caches whose
// nix-cache-info spells StoreDir in odd ways: Nix refuses the cache exactly
// when LookupCacheInfo finds a StoreDir other than its own. (Several
// conflicting StoreDir lines, where Nix checks each, are left out: the last
// one wins here.)
func TestCacheInfoAgreesWithNix(t *testing.T) {
	nixtest.Require(t)
	sd := storepath.DefaultDir()
	for _, text := range []string{
		"StoreDir: " + sd + "\n",
		"StoreDir: /other\n",
		"StoreDir:/other  \n",
		"StoreDir: \t/other\r\n",
		" StoreDir: /other\n",
		"StoreDir : /other\n",
		"storedir: /other\n",
		"Note: StoreDir: /other\n",
		"StoreDir\n/other\n",
		"WantMassQuery: 1\nStoreDir: /other",
		"StoreDir:\n",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := nixtest.Output(context.Background(), nil, "nix", "store", "ping", "--store", "file://"+dir)
		nixRefuses := err != nil
		if err != nil && !strings.Contains(err.Error(), "is for Nix stores with prefix") {
			t.Fatalf("nix store ping: %v", err)
		}
		v, ok := narinfo.LookupCacheInfo(text, "StoreDir")
		if weRefuse := ok && v != sd; weRefuse != nixRefuses {
			t.Errorf("nix-cache-info %q: StoreDir is %q here; Nix refuses the cache: %v", text, v, nixRefuses)
		}
	}
}
