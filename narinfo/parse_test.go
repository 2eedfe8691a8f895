package narinfo_test

import (
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/storepath"
)

// base is a narinfo written by Nix 2.8 (nix copy --to
// 'file://…?compression=xz&secret-key=…'), with its store directory
// replaced by @SD@.
const base = `StorePath: @SD@/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-nbtry-top
URL: nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz
Compression: xz
FileHash: sha256:0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc
FileSize: 176
NarHash: sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0
NarSize: 168
References: apigg0m14gc8i536iy78wimj1d90aar2-nbtry-dep
Deriver: 0fw55byy4ip93crpg380s5w0mg1q3m9d-nbtry-top.drv
Sig: test-1:mrQE2R2OgvTn5e3RkLYjMsS2x8a0tQEIVB9HwzQdY0600NeTxouoBkLT2ZHQxSFyJNcpR9O371OpSrmeDWJMDg==
`

const (
	basePath = "dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-nbtry-top"
	depPath  = "apigg0m14gc8i536iy78wimj1d90aar2-nbtry-dep"
	fileHash = "sha256:0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc"
	narHash  = "sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0"
	sig      = "test-1:mrQE2R2OgvTn5e3RkLYjMsS2x8a0tQEIVB9HwzQdY0600NeTxouoBkLT2ZHQxSFyJNcpR9O371OpSrmeDWJMDg=="
	otherSig = "other-1:3mMO9aWyej1CCNGE+2mwyo4gV8pBcnIJCCxspMRBO2K2LhJs02ELdOZ8LkIJNECHrMBv5A++tavesz51qj+GAQ=="
)

func encodeHash(s string, e nixhash.Encoding) string {
	h, err := nixhash.ParseAny(s, nil)
	if err != nil {
		panic(err)
	}
	return h.Format(e, true)
}

// edit returns base with each "old" line (key prefix) replaced by its new
// text; an empty new text deletes the line.
func edit(pairs ...string) string {
	lines := strings.SplitAfter(base, "\n")
	for i := 0; i < len(pairs); i += 2 {
		found := false
		for j, l := range lines {
			if strings.HasPrefix(l, pairs[i]) {
				lines[j] = pairs[i+1]
				found = true
				break
			}
		}
		if !found {
			panic("edit: no line " + pairs[i])
		}
	}
	return strings.Join(lines, "")
}

// summary renders every field of n as text, for comparisons with readable
// failures.
func summary(n *narinfo.NarInfo) map[string]string {
	hash := func(h *nixhash.Hash) string {
		if h == nil {
			return "<nil>"
		}
		return h.Format(nixhash.NixBase32, true)
	}
	var extra []string
	for _, f := range n.Extra {
		extra = append(extra, strconv.Quote(f.Key)+"="+strconv.Quote(f.Value))
	}
	return map[string]string{
		"StorePath":   n.StorePath,
		"URL":         n.URL,
		"Compression": n.Compression,
		"FileHash":    hash(n.FileHash),
		"FileSize":    strconv.FormatUint(n.FileSize, 10),
		"NarHash":     hash(n.NarHash),
		"NarSize":     strconv.FormatUint(n.NarSize, 10),
		"References":  strings.Join(n.References, " "),
		"Deriver":     n.Deriver,
		"Sigs":        strings.Join(n.Sigs, " "),
		"CA":          n.CA,
		"Extra":       strings.Join(extra, " "),
	}
}

func baseSummary(sd string) map[string]string {
	return map[string]string{
		"StorePath":   sd + "/" + basePath,
		"URL":         "nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz",
		"Compression": "xz",
		"FileHash":    fileHash,
		"FileSize":    "176",
		"NarHash":     narHash,
		"NarSize":     "168",
		"References":  depPath,
		"Deriver":     "0fw55byy4ip93crpg380s5w0mg1q3m9d-nbtry-top.drv",
		"Sigs":        sig,
		"CA":          "",
		"Extra":       "",
	}
}

type validCase struct {
	name string
	in   string
	// want lists the fields that differ from baseSummary.
	want map[string]string
}

var validCases = []validCase{
	{name: "written by nix", in: base},
	{
		name: "cachix hex FileHash",
		in:   edit("FileHash:", "FileHash: "+encodeHash(fileHash, nixhash.Base16)+"\n"),
	},
	{
		name: "SRI NarHash",
		in:   edit("NarHash:", "NarHash: "+encodeHash(narHash, nixhash.SRI)+"\n"),
	},
	{
		name: "base64 NarHash",
		in:   edit("NarHash:", "NarHash: "+encodeHash(narHash, nixhash.Base64)+"\n"),
	},
	{
		name: "sha512 FileHash",
		in:   edit("FileHash:", "FileHash: sha512:"+strings.Repeat("ab", 64)+"\n"),
		want: map[string]string{"FileHash": encodeHash("sha512:"+strings.Repeat("ab", 64), nixhash.NixBase32)},
	},
	{
		name: "no FileHash nor FileSize",
		in:   edit("FileHash:", "", "FileSize:", ""),
		want: map[string]string{"FileHash": "<nil>", "FileSize": "0"},
	},
	{
		name: "missing Compression means bzip2",
		in:   edit("Compression:", ""),
		want: map[string]string{"Compression": "bzip2"},
	},
	{
		name: "empty Compression means bzip2",
		in:   edit("Compression:", "Compression: \n"),
		want: map[string]string{"Compression": "bzip2"},
	},
	{
		name: "unknown-deriver",
		in:   edit("Deriver:", "Deriver: unknown-deriver\n"),
		want: map[string]string{"Deriver": ""},
	},
	{
		name: "no Deriver, no Sig, no References",
		in:   edit("Deriver:", "", "Sig:", "", "References:", ""),
		want: map[string]string{"Deriver": "", "Sigs": "", "References": ""},
	},
	{
		name: "empty References",
		in:   edit("References:", "References: \n"),
		want: map[string]string{"References": ""},
	},
	{
		name: "references sorted and deduplicated, extra spaces",
		in:   edit("References:", "References:  "+depPath+"  "+basePath+" "+depPath+"\n"),
		want: map[string]string{"References": depPath + " " + basePath},
	},
	{
		name: "empty References then a list",
		in:   edit("References:", "References: \nReferences: "+depPath+"\n"),
	},
	{
		name: "signatures sorted and deduplicated",
		in:   edit("Sig:", "Sig: "+sig+"\nSig: "+otherSig+"\nSig: "+sig+"\n"),
		want: map[string]string{"Sigs": otherSig + " " + sig},
	},
	{
		name: "unknown keys kept in order",
		in:   base + "System: x86_64-linux\nZeta: 1\nAlpha: two words\n",
		want: map[string]string{"Extra": `"System"="x86_64-linux" "Zeta"="1" "Alpha"="two words"`},
	},
	{
		name: "later duplicates overwrite",
		in:   base + "URL: nar/other.nar\nNarSize: 999\nCompression: zstd\n",
		want: map[string]string{"URL": "nar/other.nar", "NarSize": "999", "Compression": "zstd"},
	},
	{
		name: "CA text",
		in:   base + "CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n",
		want: map[string]string{"CA": "text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"},
	},
	{
		name: "CA fixed recursive in hex is rendered in nix32",
		in:   base + "CA: fixed:r:sha256:" + strings.Repeat("b", 64) + "\n",
		want: map[string]string{"CA": "fixed:r:sha256:1fxvpfxvpfxvpfxvpfxvpfxvpfxvpfxvpfxvpfxvpfxvpfxvpfxv"},
	},
	{
		name: "CA fixed flat sha1",
		in:   base + "CA: fixed:sha1:" + strings.Repeat("c", 40) + "\n",
		want: map[string]string{"CA": "fixed:" + encodeHash("sha1:"+strings.Repeat("c", 40), nixhash.NixBase32)},
	},
	{
		name: "empty CA then a CA",
		in:   base + "CA: \nCA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n",
		want: map[string]string{"CA": "text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"},
	},
	{
		name: "value starts two bytes after the colon",
		in:   edit("URL:", "URL:xnar/a.nar\n"),
		want: map[string]string{"URL": "nar/a.nar"},
	},
	{
		name: "value keeps further colons and spaces",
		in:   edit("URL:", "URL:  https://example.org/a b:c\n"),
		want: map[string]string{"URL": " https://example.org/a b:c"},
	},
	{
		name: "empty key is an unknown key",
		in:   base + ": v\n",
		want: map[string]string{"Extra": `""="v"`},
	},
	{
		name: "colon then newline swallows the next line",
		in:   base + "Foo:\nBar baz\n",
		want: map[string]string{"Extra": `"Foo"="Bar baz"`},
	},
}

type errorCase struct {
	name string
	in   string
	want error // sentinel
	line int
	key  string
}

var errorCases = []errorCase{
	{name: "empty file", in: "", want: narinfo.ErrMissingField, key: "StorePath"},
	{name: "no final newline", in: strings.TrimSuffix(base, "\n"), want: narinfo.ErrSyntax, line: 10, key: "Sig"},
	{name: "colon newline at the end", in: base + "Foo:\n", want: narinfo.ErrSyntax, line: 11, key: "Foo"},
	{name: "missing StorePath", in: edit("StorePath:", ""), want: narinfo.ErrMissingField, key: "StorePath"},
	{name: "missing URL", in: edit("URL:", ""), want: narinfo.ErrMissingField, key: "URL"},
	{name: "empty URL", in: edit("URL:", "URL: \n"), want: narinfo.ErrInvalidValue, line: 2, key: "URL"},
	{name: "missing NarHash", in: edit("NarHash:", ""), want: narinfo.ErrMissingField, key: "NarHash"},
	{name: "missing NarSize", in: edit("NarSize:", ""), want: narinfo.ErrMissingField, key: "NarSize"},
	{name: "zero NarSize", in: edit("NarSize:", "NarSize: 0\n"), want: narinfo.ErrInvalidValue, line: 7, key: "NarSize"},
	{name: "negative NarSize", in: edit("NarSize:", "NarSize: -1\n"), want: narinfo.ErrInvalidValue, line: 7, key: "NarSize"},
	{name: "NarSize with spaces", in: edit("NarSize:", "NarSize: 168 \n"), want: narinfo.ErrInvalidValue, line: 7, key: "NarSize"},
	{name: "FileSize not a number", in: edit("FileSize:", "FileSize: big\n"), want: narinfo.ErrInvalidValue, line: 5, key: "FileSize"},
	{name: "NarHash without algorithm", in: edit("NarHash:", "NarHash: 1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0\n"), want: narinfo.ErrInvalidValue, line: 6, key: "NarHash"},
	{name: "NarHash too short", in: edit("NarHash:", "NarHash: sha256:1i8pp3\n"), want: narinfo.ErrInvalidValue, line: 6, key: "NarHash"},
	{name: "NarHash bad algorithm", in: edit("NarHash:", "NarHash: sha3:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0\n"), want: narinfo.ErrInvalidValue, line: 6, key: "NarHash"},
	{name: "NarHash unpadded base64 of 33 bytes", in: edit("NarHash:", "NarHash: sha256:"+strings.Repeat("A", 44)+"\n"), want: narinfo.ErrInvalidValue, line: 6, key: "NarHash"},
	{name: "empty FileHash", in: edit("FileHash:", "FileHash: \n"), want: narinfo.ErrInvalidValue, line: 4, key: "FileHash"},
	{name: "StorePath in another store", in: edit("StorePath:", "StorePath: /gnu/store/"+basePath+"\n"), want: narinfo.ErrInvalidValue, line: 1, key: "StorePath"},
	{name: "StorePath relative", in: edit("StorePath:", "StorePath: "+basePath+"\n"), want: narinfo.ErrInvalidValue, line: 1, key: "StorePath"},
	{name: "StorePath bad hash", in: edit("StorePath:", "StorePath: @SD@/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-nbtry-top\n"), want: narinfo.ErrInvalidValue, line: 1, key: "StorePath"},
	{name: "StorePath bad name", in: edit("StorePath:", "StorePath: @SD@/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-nbtry top\n"), want: narinfo.ErrInvalidValue, line: 1, key: "StorePath"},
	{name: "reference not a base name", in: edit("References:", "References: @SD@/"+depPath+"\n"), want: narinfo.ErrInvalidValue, line: 8, key: "References"},
	{name: "reference too short", in: edit("References:", "References: abc\n"), want: narinfo.ErrInvalidValue, line: 8, key: "References"},
	{name: "duplicate References", in: base + "References: " + depPath + "\n", want: narinfo.ErrDuplicateField, line: 11, key: "References"},
	{name: "References then empty References", in: base + "References: \n", want: narinfo.ErrDuplicateField, line: 11, key: "References"},
	{name: "empty Deriver", in: edit("Deriver:", "Deriver: \n"), want: narinfo.ErrInvalidValue, line: 9, key: "Deriver"},
	{name: "duplicate CA", in: base + "CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\nCA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n", want: narinfo.ErrDuplicateField, line: 12, key: "CA"},
	{name: "CA unknown method", in: base + "CA: nar:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n", want: narinfo.ErrInvalidValue, line: 11, key: "CA"},
	{name: "CA text sha1", in: base + "CA: text:sha1:" + strings.Repeat("c", 40) + "\n", want: narinfo.ErrInvalidValue, line: 11, key: "CA"},
	{name: "CA SRI hash", in: base + "CA: fixed:r:" + encodeHash(narHash, nixhash.SRI) + "\n", want: narinfo.ErrInvalidValue, line: 11, key: "CA"},
	{name: "CA no hash", in: base + "CA: fixed:r:sha256\n", want: narinfo.ErrInvalidValue, line: 11, key: "CA"},
	// Nix reads "\nURL" as an unknown key here, so it sees no URL and fails
	// too, for another reason.
	{name: "blank line", in: strings.Replace(base, "\nURL:", "\n\nURL:", 1), want: narinfo.ErrSyntax, line: 2},
	{name: "line without colon at the end", in: base + "garbage\n", want: narinfo.ErrSyntax, line: 11},
}

func TestParse(t *testing.T) {
	t.Parallel()
	const sd = "/nix/store"
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := strings.ReplaceAll(tc.in, "@SD@", sd)
			n, err := narinfo.ParseString(in, narinfo.WithStoreDir(sd))
			if err != nil {
				t.Fatalf("ParseString: %v", err)
			}
			want := baseSummary(sd)
			maps.Copy(want, tc.want)
			got := summary(n)
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%s: got %q, want %q", k, got[k], want[k])
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const sd = "/nix/store"
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := strings.ReplaceAll(tc.in, "@SD@", sd)
			n, err := narinfo.ParseString(in, narinfo.WithStoreDir(sd))
			if err == nil {
				t.Fatalf("ParseString succeeded with %+v, want an error", n)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want one wrapping %v", err, tc.want)
			}
			var pe *narinfo.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T, want *narinfo.ParseError", err)
			}
			if pe.Line != tc.line || pe.Key != tc.key {
				t.Errorf("got line %d key %q, want line %d key %q (%v)", pe.Line, pe.Key, tc.line, tc.key, err)
			}
		})
	}
}

func TestParseStoreDir(t *testing.T) {
	const sd = "/custom/store"
	in := strings.ReplaceAll(base, "@SD@", sd)
	if _, err := narinfo.ParseString(in); err == nil {
		t.Errorf("parsing a narinfo of %s with the default store dir succeeded, want an error", sd)
	}
	n, err := narinfo.ParseString(in, narinfo.WithStoreDir(sd+"/"))
	if err != nil {
		t.Fatalf("WithStoreDir(%q): %v", sd+"/", err)
	}
	if n.StorePath != sd+"/"+basePath {
		t.Errorf("got StorePath %q, want %q", n.StorePath, sd+"/"+basePath)
	}
	t.Setenv("NIX_STORE_DIR", sd)
	if got := storepath.DefaultDir(); got != sd {
		t.Errorf("DefaultStoreDir with NIX_STORE_DIR=%s: got %q", sd, got)
	}
	if _, err := narinfo.Parse(strings.NewReader(in)); err != nil {
		t.Errorf("Parse with NIX_STORE_DIR=%s: %v", sd, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestParseReadError(t *testing.T) {
	t.Parallel()
	_, err := narinfo.Parse(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("got %v, want the reader's error", err)
	}
}
