package s3cache_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
)

func intp(n int) *int    { return &n }
func boolp(b bool) *bool { return &b }

// s3URL returns the URL ParseURL gives for s3://bucket with no parameters,
// changed by f.
func s3URL(bucket string, f func(*s3cache.URL)) *s3cache.URL {
	u := &s3cache.URL{
		Scheme: "s3", Bucket: bucket, Region: "us-east-1", AddressingStyle: "auto",
		PartSize: 5 << 20, Compression: "xz", CompressionLevel: -1,
	}
	if f != nil {
		f(u)
	}
	return u
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want *s3cache.URL
		str  string // String(); "" means raw
	}{
		{raw: "s3://nix", want: s3URL("nix", nil)},
		{
			// The URL of seed-release-process.md.
			raw: "s3://nix?endpoint=garage.example.org:3900&region=garage&scheme=http&secret-key=/run/keys/cache.sec",
			want: s3URL("nix", func(u *s3cache.URL) {
				u.Endpoint = "http://garage.example.org:3900"
				u.Region = "garage"
				u.SecretKeyFiles = []string{"/run/keys/cache.sec"}
			}),
			str: "s3://nix?endpoint=http://garage.example.org:3900&region=garage&secret-key=/run/keys/cache.sec",
		},
		{
			raw:  "s3://nix?endpoint=minio.local",
			want: s3URL("nix", func(u *s3cache.URL) { u.Endpoint = "https://minio.local" }),
			str:  "s3://nix?endpoint=https://minio.local",
		},
		{
			raw:  "s3://nix?endpoint=http://[::1]:9000/",
			want: s3URL("nix", func(u *s3cache.URL) { u.Endpoint = "http://[::1]:9000" }),
			str:  "s3://nix?endpoint=http://[::1]:9000",
		},
		{
			raw: "s3://my.bucket?profile=ci&compression=zstd&compression-level=19&parallel-compression=true&" +
				"multipart-upload=true&multipart-chunk-size=16777216&ls-compression=br&log-compression=br&" +
				"addressing-style=virtual&priority=30&want-mass-query=1&write-nar-listing=false&local-nar-cache=&" +
				"narinfo-compression=none&storage-class=STANDARD_IA&index-debug-info=false&store=/nix/store",
			want: s3URL("my.bucket", func(u *s3cache.URL) {
				u.Profile = "ci"
				u.Compression = "zstd"
				u.CompressionLevel = 19
				u.ParallelCompression = true
				u.PartSize = 16 << 20
				u.AddressingStyle = "virtual"
				u.Priority = intp(30)
				u.WantMassQuery = boolp(true)
				u.StoreDir = "/nix/store"
				u.StorageClass = "STANDARD_IA"
				u.LogCompression = "br"
			}),
			// The parameters that ask for what nixbucket does anyway are
			// not repeated.
			str: "s3://my.bucket?addressing-style=virtual&compression-level=19&compression=zstd&" +
				"log-compression=br&multipart-chunk-size=16777216&" +
				"parallel-compression=true&priority=30&profile=ci&storage-class=STANDARD_IA&store=/nix/store&want-mass-query=true",
		},
		{
			raw: "s3://nix?endpoint=https://s3.example.org&tls-certificate=/etc/nixbucket/client.pem&tls-private-key=/etc/nixbucket/client.key",
			want: s3URL("nix", func(u *s3cache.URL) {
				u.Endpoint = "https://s3.example.org"
				u.TLSCertificate = "/etc/nixbucket/client.pem"
				u.TLSPrivateKey = "/etc/nixbucket/client.key"
			}),
		},
		{
			raw:  "s3://nix?narinfo-compression=br",
			want: s3URL("nix", func(u *s3cache.URL) { u.NarinfoCompression = "br" }),
		},
		{
			raw:  "s3://nix?log-compression=zstd",
			want: s3URL("nix", func(u *s3cache.URL) { u.LogCompression = "zstd" }),
		},
		{
			raw:  "s3://nix?log-compression=none",
			want: s3URL("nix", nil),
			str:  "s3://nix",
		},
		{
			// Nix writes a file:// cache's logs as they are.
			raw:  "file:///var/cache/nix?log-compression=zstd",
			want: &s3cache.URL{Scheme: "file", Dir: "/var/cache/nix", Compression: "xz", CompressionLevel: -1},
			str:  "file:///var/cache/nix",
		},
		{
			raw:  "s3://nix?buffer-size=6291456",
			want: s3URL("nix", func(u *s3cache.URL) { u.PartSize = 6 << 20 }),
			str:  "s3://nix?multipart-chunk-size=6291456",
		},
		{
			raw:  "s3://nix?region=us-east-1&compression=xz&scheme=https",
			want: s3URL("nix", nil),
			str:  "s3://nix",
		},
		{
			raw:  "file:///var/cache/nix?compression=none&secret-key=key.sec",
			want: &s3cache.URL{Scheme: "file", Dir: "/var/cache/nix", Compression: "none", CompressionLevel: -1, SecretKeyFiles: []string{"key.sec"}},
			str:  "file:///var/cache/nix?compression=none&secret-key=key.sec",
		},
		{
			// Nix 2.29's secret-keys=, with secret-key= first.
			raw:  "file:///var/cache/nix?secret-keys=b.sec,c.sec&secret-key=a.sec",
			want: &s3cache.URL{Scheme: "file", Dir: "/var/cache/nix", Compression: "xz", CompressionLevel: -1, SecretKeyFiles: []string{"a.sec", "b.sec", "c.sec"}},
			str:  "file:///var/cache/nix?secret-keys=a.sec%2Cb.sec%2Cc.sec",
		},
		{
			raw:  "file:///tmp/a%20b/../c/",
			want: &s3cache.URL{Scheme: "file", Dir: "/tmp/c", Compression: "xz", CompressionLevel: -1},
			str:  "file:///tmp/c",
		},
		{
			raw: "file:///c?priority=0&want-mass-query=no&store=/gnu/store&compression-level=0",
			want: &s3cache.URL{Scheme: "file", Dir: "/c", Compression: "xz", CompressionLevel: 0,
				Priority: intp(0), WantMassQuery: boolp(false), StoreDir: "/gnu/store"},
			str: "file:///c?compression-level=0&priority=0&store=/gnu/store&want-mass-query=false",
		},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := s3cache.ParseURL(tc.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseURL =\n%+v\nwant\n%+v", got, tc.want)
			}
			want := tc.str
			if want == "" {
				want = tc.raw
			}
			if s := got.String(); s != want {
				t.Errorf("String() = %s, want %s", s, want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want []string // substrings of the error
	}{
		{"s3://nix?endpont=x", []string{`unknown parameter "endpont"`, "valid parameters for s3:// are", "endpoint", "region"}},
		{"file:///d?region=garage", []string{`unknown parameter "region"`, "valid parameters for file://"}},
		{"s3://nix?region=a&region=b", []string{`"region" given 2 times`}},
		{"s3://nix?compression=bzip2", []string{"compression", "want one of xz, zstd, none"}},
		{"s3://nix?multipart-chunk-size=1024", []string{"multipart-chunk-size", "5 MiB"}},
		{"s3://nix?multipart-chunk-size=6291456&buffer-size=7340032", []string{"differ"}},
		{"s3://nix?scheme=ftp&endpoint=x", []string{"scheme", "http or https"}},
		{"s3://nix?scheme=http&endpoint=https://x", []string{"contradicts"}},
		{"s3://nix?scheme=http", []string{"needs an endpoint"}},
		{"s3://nix?endpoint=http://user:pw@host", []string{"credentials in the endpoint"}},
		{"s3://nix?endpoint=http://host/path", []string{"no path"}},
		{"s3://nix?endpoint=http://host:99999", []string{"bad port"}},
		{"s3://nix?parallel-compression=maybe", []string{"want true or false"}},
		{"s3://nix?priority=-1", []string{"priority"}},
		{"s3://nix?addressing-style=dns", []string{"addressing-style", "auto, path, virtual"}},
		{"s3://nix/prefix", []string{"key prefix"}},
		{"s3://", []string{"missing bucket name"}},
		{"s3://nix:9000", []string{"character ':'"}},
		{"s3://user@nix", []string{"want s3://BUCKET"}},
		{"s3://nix#frag", []string{"want s3://BUCKET"}},
		{"http://cache.nixos.org", []string{`unsupported scheme "http"`}},
		{"file://relative/dir", []string{`host "relative"`}},
		{"file:relative", []string{"want s3://BUCKET?PARAMS or file:///DIR?PARAMS"}},
		{"s3://nix?secret-key=", []string{"empty value"}},
		{"s3://nix?a=%zz", []string{"parsing parameters"}},
		{"s3://nix?write-nar-listing=true", []string{`write-nar-listing="true"`, "does not write .ls", "false"}},
		{"file:///d?write-nar-listing=1", []string{"write-nar-listing", "does not write .ls"}},
		{"s3://nix?write-nar-listing=perhaps", []string{"write-nar-listing", "want true or false"}},
		{"s3://nix?narinfo-compression=xz", []string{`narinfo-compression="xz"`, "Nix 2.34", "zstd, br or gzip"}},
		{"file:///d?narinfo-compression=gzip", []string{"narinfo-compression", "file://", "uncompressed"}},
		{"s3://nix?narinfo-compression=lz4", []string{"narinfo-compression", "want none, zstd, br or gzip"}},
		{"s3://nix?compression-level=23", []string{"compression-level", "0 to 22"}},
		{"s3://nix?compression-level=fast", []string{"compression-level"}},
		{"s3://nix?want-mass-query=2", []string{"want-mass-query", "want true or false"}},
		{"s3://nix?priority=high", []string{"priority", "non-negative integer"}},
		{"s3://nix?store=nix/store", []string{"store", "absolute"}},
		{"s3://nix?store=/nix/store/", []string{"store", "clean"}},
		{"s3://nix?store=/", []string{"store"}},
		// Every Nix parameter nixbucket cannot honour is refused, saying why.
		{"s3://nix?index-debug-info=true", []string{`index-debug-info="true"`, "does not write debuginfo indexes"}},
		{"file:///d?index-debug-info=1", []string{"index-debug-info", "does not write debuginfo indexes"}},
		{"s3://nix?index-debug-info=maybe", []string{"index-debug-info", "want true or false"}},
		{"s3://nix?multipart-upload=false", []string{`multipart-upload="false"`, "multipart upload"}},
		{"s3://nix?multipart-threshold=104857600", []string{"multipart-threshold", "multipart-chunk-size"}},
		{"s3://nix?local-nar-cache=/var/cache/nars", []string{"local-nar-cache", "no local copies"}},
		{"s3://nix?path-info-cache-size=0", []string{"path-info-cache-size", "in-memory narinfo cache"}},
		{"s3://nix?system-features=kvm", []string{"system-features", "builds nothing"}},
		{"s3://nix?trusted=1", []string{`trusted="1"`, "substituters"}},
		{"file:///d?trusted=true", []string{"trusted", "substituters"}},
		{"s3://nix?ls-compression=rar", []string{"ls-compression", "want one of"}},
		{"s3://nix?log-compression=rar", []string{"log-compression", "want one of"}},
		{"s3://nix?tls-certificate=/c.pem", []string{"tls-certificate and tls-private-key go together"}},
		{"s3://nix?tls-private-key=/c.key", []string{"go together"}},
		{"s3://nix?tls-certificate=&tls-private-key=/k", []string{"tls-certificate", "empty value"}},
		{"file:///d?tls-certificate=/c&tls-private-key=/k", []string{`unknown parameter "tls-certificate"`}},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			u, err := s3cache.ParseURL(tc.raw)
			if err == nil {
				t.Fatalf("ParseURL = %s, want an error", u)
			}
			if !errors.Is(err, s3cache.ErrBadURL) {
				t.Errorf("error %v does not wrap ErrBadURL", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"s3://nix",
		"s3://nix?endpoint=garage.example.org:3900&region=garage&scheme=http&secret-key=/k",
		"s3://a.b?endpoint=http://[::1]:9000&addressing-style=path&priority=1&want-mass-query=false",
		"s3://b?multipart-chunk-size=5242880&buffer-size=5242880&compression=zstd&compression-level=3",
		"s3://b?trusted=1&ls-compression=br&storage-class=GLACIER&narinfo-compression=gzip",
		"s3://b?tls-certificate=/c.pem&tls-private-key=/k.pem&multipart-upload=1&index-debug-info=0",
		"file:///tmp/cache?compression=none",
		"file://localhost/a/../b?write-nar-listing=yes",
		"file:///a%3Fb?secret-key=%2Fk%20x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := s3cache.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, s3cache.ErrBadURL) {
				t.Fatalf("ParseURL(%q) error %v does not wrap ErrBadURL", raw, err)
			}
			return
		}
		s := u.String()
		u2, err := s3cache.ParseURL(s)
		if err != nil {
			t.Fatalf("ParseURL(%q) ok, but its String %q does not parse: %v", raw, s, err)
		}
		if !reflect.DeepEqual(u, u2) {
			t.Fatalf("round trip of %q via %q:\n%+v\n!=\n%+v", raw, s, u, u2)
		}
		if s2 := u2.String(); s2 != s {
			t.Fatalf("String not stable: %q then %q", s, s2)
		}
	})
}
