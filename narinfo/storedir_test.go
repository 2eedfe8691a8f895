package narinfo_test

import (
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestDefaultStoreDir checks the variables Nix reads for its store
// directory (settings.nixStore) and the cleaning of their value.
func TestDefaultStoreDir(t *testing.T) {
	for _, tc := range []struct {
		name, storeDir, store, want string
	}{
		{"defaults", "", "", "/nix/store"},
		{"NIX_STORE_DIR", "/x/store", "", "/x/store"},
		{"NIX_STORE_DIR cleaned", "/x//store/./", "", "/x/store"},
		{"NIX_STORE", "", "/y/store/", "/y/store"},
		{"NIX_STORE_DIR first", "/x/store", "/y/store", "/x/store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NIX_STORE_DIR", tc.storeDir)
			t.Setenv("NIX_STORE", tc.store)
			if got := storepath.DefaultDir(); got != tc.want {
				t.Fatalf("storepath.DefaultDir() = %q, want %q", got, tc.want)
			}
			in := strings.ReplaceAll(base, "@SD@", tc.want)
			if n, err := narinfo.ParseString(in); err != nil || n.StorePath != tc.want+"/"+basePath {
				t.Errorf("ParseString of a narinfo of %s: %v, %v", tc.want, n, err)
			}
		})
	}
}
