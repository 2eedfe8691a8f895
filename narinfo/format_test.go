package narinfo_test

import (
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/narinfo"
)

func TestString(t *testing.T) {
	t.Parallel()
	nh := nixhash.MustParseNixBase32(narHash)
	fh := nixhash.MustParseNixBase32(fileHash)
	tests := []struct {
		name string
		in   narinfo.NarInfo
		want string
	}{
		{
			name: "minimal: References kept with its space, no FileHash, FileSize, Deriver, Sig, CA",
			in:   narinfo.NarInfo{StorePath: "/nix/store/" + basePath, URL: "nar/x.nar", Compression: "none", NarHash: nh, NarSize: 168},
			want: "StorePath: /nix/store/" + basePath + "\nURL: nar/x.nar\nCompression: none\n" +
				"NarHash: " + narHash + "\nNarSize: 168\nReferences: \n",
		},
		{
			name: "full: sets sorted and deduplicated, Nix's order, Extra last",
			in: narinfo.NarInfo{
				StorePath: "/nix/store/" + basePath, URL: "nar/x.nar.zst", Compression: "zstd",
				FileHash: fh, FileSize: 99, NarHash: nh, NarSize: 168,
				References: []string{basePath, depPath, basePath},
				Deriver:    "0fw55byy4ip93crpg380s5w0mg1q3m9d-nbtry-top.drv",
				Sigs:       []string{sig, otherSig},
				CA:         "text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
				Extra:      []narinfo.Field{{Key: "Zeta", Value: "1"}, {Key: "Alpha", Value: "2"}},
			},
			want: "StorePath: /nix/store/" + basePath + "\nURL: nar/x.nar.zst\nCompression: zstd\n" +
				"FileHash: " + fileHash + "\nFileSize: 99\nNarHash: " + narHash + "\nNarSize: 168\n" +
				"References: " + depPath + " " + basePath + "\n" +
				"Deriver: 0fw55byy4ip93crpg380s5w0mg1q3m9d-nbtry-top.drv\n" +
				"Sig: " + otherSig + "\nSig: " + sig + "\n" +
				"CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n" +
				"Zeta: 1\nAlpha: 2\n",
		},
		{
			name: "hashes written in nix32 whatever they were parsed from",
			in: narinfo.NarInfo{StorePath: "/nix/store/" + basePath, URL: "u", Compression: "xz",
				FileHash: nixhash.MustNewHash(nixhash.SHA256, fh.Digest()), NarHash: nh, NarSize: 1},
			want: "StorePath: /nix/store/" + basePath + "\nURL: u\nCompression: xz\nFileHash: " + fileHash +
				"\nNarHash: " + narHash + "\nNarSize: 1\nReferences: \n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.in.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			if _, err := narinfo.ParseString(tc.in.String(), narinfo.WithStoreDir("/nix/store")); err != nil {
				t.Errorf("the output does not parse: %v", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	nh := nixhash.MustParseNixBase32(narHash)
	tests := []struct {
		name    string
		in      narinfo.NarInfo
		want    string
		wantErr string
	}{
		{
			name: "references sorted, deduplicated and made full",
			in: narinfo.NarInfo{StorePath: "/nix/store/" + basePath, NarHash: nh, NarSize: 168,
				References: []string{basePath, depPath, depPath}},
			want: "1;/nix/store/" + basePath + ";" + narHash + ";168;/nix/store/" + depPath + ",/nix/store/" + basePath,
		},
		{
			name: "no references: ends after the size's ';'",
			in:   narinfo.NarInfo{StorePath: "/nix/store/" + basePath, NarHash: nh, NarSize: 168},
			want: "1;/nix/store/" + basePath + ";" + narHash + ";168;",
		},
		{
			name: "the store dir is the store path's",
			in: narinfo.NarInfo{StorePath: "/custom/store/" + basePath, NarHash: nh, NarSize: 1,
				References: []string{depPath}},
			want: "1;/custom/store/" + basePath + ";" + narHash + ";1;/custom/store/" + depPath,
		},
		{
			name:    "NarSize 0",
			in:      narinfo.NarInfo{StorePath: "/nix/store/" + basePath, NarHash: nh},
			wantErr: "NarSize is not known",
		},
		{
			name:    "no NarHash",
			in:      narinfo.NarInfo{StorePath: "/nix/store/" + basePath, NarSize: 1},
			wantErr: "NarHash is not known",
		},
		{
			name:    "relative store path",
			in:      narinfo.NarInfo{StorePath: basePath, NarHash: nh, NarSize: 1},
			wantErr: "not absolute",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.in.Fingerprint()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{strings.ReplaceAll(strings.Replace(base, "NarSize: 168", "NarSize: x", 1), "@SD@", "/nix/store"), `narinfo line 7: NarSize: invalid value: "x" is not a size in bytes`},
		{"", "narinfo: StorePath: missing required field"},
		{"oops\n", "narinfo line 1: malformed line: no ':' on the line"},
	} {
		_, err := narinfo.ParseString(tc.in, narinfo.WithStoreDir("/nix/store"))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseString(%q): got %v, want %q", tc.in, err, tc.want)
		}
	}
}
