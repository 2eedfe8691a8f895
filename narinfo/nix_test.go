package narinfo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/signing"
)

// nixPathInfo is one element of Nix 2.8's `nix path-info --json` list.
type nixPathInfo struct {
	Path         string   `json:"path"`
	NarHash      string   `json:"narHash"`
	NarSize      uint64   `json:"narSize"`
	References   []string `json:"references"`
	Deriver      string   `json:"deriver"`
	Signatures   []string `json:"signatures"`
	CA           string   `json:"ca"`
	URL          string   `json:"url"`
	DownloadHash string   `json:"downloadHash"`
	DownloadSize uint64   `json:"downloadSize"`
}

// nixStoreDir asks Nix for its store directory.
func nixStoreDir(t *testing.T) string {
	t.Helper()
	nixtest.Require(t)
	s, err := strconv.Unquote(nixtest.Run(t, "nix-instantiate", "--eval", "-E", "builtins.storeDir"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queryNix runs `nix path-info --json` on store (a store URL, or "" for the
// local store) and returns Nix's view of path, or Nix's error.
func queryNix(t *testing.T, store, path string) (nixPathInfo, error) {
	t.Helper()
	args := []string{"path-info", "--json"}
	if store != "" {
		args = append(args, "--store", store)
	}
	args = append(args, nixtest.Options...)
	args = append(args, path)
	// A private cache dir keeps Nix's narinfo disk cache out of the way.
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	out, err := nixtest.Output(context.Background(), env, "nix", args...)
	if err != nil {
		return nixPathInfo{}, err
	}
	var infos []nixPathInfo
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("decoding nix path-info output %q: %v", out, err)
	}
	if len(infos) != 1 {
		t.Fatalf("nix path-info printed %d entries, want 1: %s", len(infos), out)
	}
	return infos[0], nil
}

// compareWithNix checks every field Nix reports against n.
func compareWithNix(t *testing.T, sd string, n *narinfo.NarInfo, info nixPathInfo, fromCache bool) {
	t.Helper()
	sri := func(h *nixhash.Hash) string {
		if h == nil {
			return ""
		}
		return h.Format(nixhash.SRI, true)
	}
	var refs []string
	for _, r := range n.References {
		refs = append(refs, sd+"/"+r)
	}
	deriver := ""
	if n.Deriver != "" {
		deriver = sd + "/" + n.Deriver
	}
	check := func(field, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %q, Nix says %q", field, got, want)
		}
	}
	check("StorePath", n.StorePath, info.Path)
	check("NarHash", sri(n.NarHash), info.NarHash)
	check("NarSize", strconv.FormatUint(n.NarSize, 10), strconv.FormatUint(info.NarSize, 10))
	check("References", strings.Join(refs, " "), strings.Join(info.References, " "))
	check("Deriver", deriver, info.Deriver)
	check("CA", n.CA, info.CA)
	if fromCache {
		check("Sigs", strings.Join(n.Sigs, " "), strings.Join(info.Signatures, " "))
		check("URL", n.URL, info.URL)
		check("FileHash", sri(n.FileHash), info.DownloadHash)
		check("FileSize", strconv.FormatUint(n.FileSize, 10), strconv.FormatUint(info.DownloadSize, 10))
	}
}

// writeCache makes a file:// binary cache holding one narinfo for
// sd/basePath and returns its URL.
func writeCache(t *testing.T, sd, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte("StoreDir: "+sd+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, basePath[:32]+".narinfo"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

// TestParseAgreesWithNix runs every case of TestParse and TestParseErrors
// through Nix's own parser (nix path-info on a file:// cache holding the
// narinfo): where we accept, Nix accepts and reads the same fields; where
// we refuse, Nix refuses.
func TestParseAgreesWithNix(t *testing.T) {
	sd := nixStoreDir(t)
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.ReplaceAll(tc.in, "@SD@", sd)
			n, err := narinfo.ParseString(in, narinfo.WithStoreDir(sd))
			if err != nil {
				t.Fatal(err)
			}
			info, err := queryNix(t, writeCache(t, sd, in), sd+"/"+basePath)
			if err != nil {
				t.Fatalf("Nix refuses what we accept: %v", err)
			}
			compareWithNix(t, sd, n, info, true)
		})
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.ReplaceAll(tc.in, "@SD@", sd)
			if _, err := narinfo.ParseString(in, narinfo.WithStoreDir(sd)); err == nil {
				t.Fatal("we accept it")
			}
			if info, err := queryNix(t, writeCache(t, sd, in), sd+"/"+basePath); err == nil {
				t.Errorf("Nix accepts what we refuse: %+v", info)
			}
		})
	}
}

func nonce(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPaths builds, with real Nix, an input-addressed derivation output
// that refers to another one and to itself, and a content-addressed
// builtins.toFile path; tag makes them unique. It returns their store paths.
func testPaths(t *testing.T, tag string) []string {
	t.Helper()
	expr := `let dep = ` + nixtest.Derivation("narinfo-"+tag+"-dep", "echo "+tag+" > $out") + `; in {
		inherit dep;
		top = ` + nixtest.Derivation("narinfo-"+tag+"-top", "echo ${dep} $out > $out") + `;
		file = builtins.toFile "narinfo-` + tag + `-file" "` + tag + `";
	}`
	f := nixtest.WriteExpr(t, expr)
	paths := nixtest.Build(t, f, "dep", "top")
	file, err := strconv.Unquote(nixtest.Run(t, "nix-instantiate", "--read-write-mode", "--eval", f, "-A", "file"))
	if err != nil {
		t.Fatal(err)
	}
	return append(paths, file)
}

// copyToCache runs `nix copy --to file://DIR?params` and returns DIR.
func copyToCache(t *testing.T, params string, paths []string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"copy", "--to", "file://" + dir + "?" + params}, nixtest.Options...)
	nixtest.Run(t, "nix", append(args, paths...)...)
	return dir
}

func readNarinfo(t *testing.T, cache, storePath string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cache, filepath.Base(storePath)[:32]+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNixWrittenNarinfos has real Nix write narinfos (nix copy --to file://,
// uncompressed, and xz with a signing key) and checks that we parse every
// field as Nix reads it back, reproduce the file byte for byte, and compute
// the fingerprint that Nix's signatures cover.
func TestNixWrittenNarinfos(t *testing.T) {
	sd := nixStoreDir(t)
	paths := testPaths(t, nonce(t))
	keyDir := t.TempDir()
	sk, pk := filepath.Join(keyDir, "sk"), filepath.Join(keyDir, "pk")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", "narinfo-test-1", sk, pk)
	pkText, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.ParsePublicKey(string(pkText))
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, params, compression, ext string
		signed                         bool
	}{
		{"none", "compression=none", "none", ".nar", false},
		{"xz signed", "compression=xz&secret-key=" + sk, "xz", ".nar.xz", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := copyToCache(t, c.params, paths)
			for _, p := range paths {
				text := readNarinfo(t, cache, p)
				n, err := narinfo.Parse(bytes.NewReader(text), narinfo.WithStoreDir(sd))
				if err != nil {
					t.Fatalf("parsing Nix's narinfo of %s: %v\n%s", p, err, text)
				}
				if got := n.String(); got != string(text) {
					t.Errorf("String() differs from Nix's file:\n got: %q\nwant: %q", got, text)
				}
				var buf bytes.Buffer
				if k, err := n.WriteTo(&buf); err != nil || k != int64(len(text)) || buf.String() != string(text) {
					t.Errorf("WriteTo wrote %d bytes (%v), %q; want %q", k, err, buf.String(), text)
				}
				if n.Compression != c.compression || !strings.HasSuffix(n.URL, c.ext) {
					t.Errorf("Compression %q URL %q, want %q and a URL ending in %q", n.Compression, n.URL, c.compression, c.ext)
				}
				fromCache, err := queryNix(t, "file://"+cache, p)
				if err != nil {
					t.Fatal(err)
				}
				compareWithNix(t, sd, n, fromCache, true)
				local, err := queryNix(t, "", p)
				if err != nil {
					t.Fatal(err)
				}
				compareWithNix(t, sd, n, local, false)

				fp, err := n.Fingerprint()
				if err != nil {
					t.Fatal(err)
				}
				if !c.signed {
					if len(n.Sigs) != 0 {
						t.Errorf("unsigned cache has Sigs %q", n.Sigs)
					}
					continue
				}
				if len(n.Sigs) != 1 {
					t.Fatalf("got Sigs %q, want one signature by narinfo-test-1", n.Sigs)
				}
				if !signing.Verify(pub, []byte(fp), n.Sigs[0]) {
					t.Errorf("Nix's signature %s does not verify over our fingerprint %q", n.Sigs[0], fp)
				}
				n.NarSize++
				tampered, _ := n.Fingerprint()
				if signing.Verify(pub, []byte(tampered), n.Sigs[0]) {
					t.Errorf("signature verifies over a tampered fingerprint %q", tampered)
				}
			}
		})
	}
}
