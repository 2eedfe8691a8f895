package s3cache

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/signing"
)

// Store URL schemes.
const (
	// SchemeS3 names an S3 bucket: s3://BUCKET?endpoint=…&region=….
	SchemeS3 = "s3"
	// SchemeFile names a local directory: file:///DIR.
	SchemeFile = "file"
)

// Defaults of store URL parameters, as in Nix.
const (
	// DefaultRegion is the region when the URL gives none.
	DefaultRegion = "us-east-1"
	// DefaultCompression is the NAR compression when the URL gives none
	// (layout.DefaultCompression).
	DefaultCompression = layout.DefaultCompression
	// MinPartSize is S3's smallest multipart part (but the last), and the
	// default multipart-chunk-size.
	MinPartSize int64 = 5 << 20
	// MaxPartSize is S3's largest multipart part.
	MaxPartSize int64 = 5 << 30
	// MaxParts is the most parts one S3 multipart upload may have.
	MaxParts = 10000
)

// ErrBadURL is returned (wrapped) by ParseURL for any malformed store URL.
var ErrBadURL = errors.New("invalid store URL")

// URL is a parsed Nix-style store URL. ParseURL fills every field with its
// effective value (defaults included); String renders only what differs
// from the defaults, so ParseURL(u.String()) equals u.
type URL struct {
	// Scheme is SchemeS3 or SchemeFile.
	Scheme string
	// Bucket is the S3 bucket name (s3:// only).
	Bucket string
	// Dir is the cleaned absolute directory (file:// only).
	Dir string

	// Endpoint is the S3 endpoint as a URL with scheme and host
	// ("http://127.0.0.1:3900"), or "" for AWS (endpoint=, scheme=).
	Endpoint string
	// Region is the SigV4 region (region=, default us-east-1).
	Region string
	// Profile is the AWS shared-config profile, or "" for the default
	// credential chain (profile=).
	Profile string
	// AddressingStyle is "auto" (path-style for custom endpoints and
	// buckets with dots, virtual-host for AWS), "path" or "virtual"
	// (addressing-style=).
	AddressingStyle string
	// StorageClass is sent as x-amz-storage-class when set
	// (storage-class=).
	StorageClass string
	// PartSize is the multipart part size in bytes
	// (multipart-chunk-size=, alias buffer-size=; default 5 MiB).
	PartSize int64

	// SecretKeyFiles are the paths of the Nix signing key files
	// (secret-key=, then secret-keys=F1,F2,… as in Nix 2.29); paths, not
	// secrets.
	SecretKeyFiles []string
	// Compression is the NAR compression: "xz", "zstd" or "none"
	// (compression=, default xz).
	Compression string
	// CompressionLevel is the codec level, -1 for its default
	// (compression-level=).
	CompressionLevel int
	// ParallelCompression asks for multi-threaded compression
	// (parallel-compression=). nixbucket always compresses large NARs on
	// every core, so it changes nothing.
	ParallelCompression bool
	// NarinfoCompression is the Content-Encoding narinfos are written
	// with: "zstd", "br" or "gzip", as Nix's narinfo-compression; "" for
	// none (s3:// only).
	NarinfoCompression string
	// LogCompression is the Content-Encoding build logs are written with
	// (push --logs), as Nix's log-compression: one of Nix's method names,
	// "" for none. Only s3:// keeps it: Nix writes a file:// cache's logs
	// as they are, and reads them so. Which methods push can write is
	// push.CheckLogCompression's to say.
	LogCompression string
	// Priority, if not nil, is written to a new nix-cache-info
	// (priority=).
	Priority *int
	// WantMassQuery, if not nil, is written to a new nix-cache-info
	// (want-mass-query=).
	WantMassQuery *bool
	// StoreDir is the store directory the cache is for, as Nix's store=
	// ("" when not given: the local store's).
	StoreDir string

	// TLSCertificate and TLSPrivateKey are the PEM files of a client
	// certificate and its key, presented to the S3 endpoint (mutual TLS;
	// tls-certificate=, tls-private-key=, both or neither; s3:// only).
	// Paths, not secrets.
	TLSCertificate string
	TLSPrivateKey  string
}

// param describes one query parameter Nix knows.
type param struct {
	s3Only bool
	// refused: no value is accepted (not listed as valid).
	refused bool
	set     func(u *URL, v string) error
}

var params = map[string]param{
	"endpoint":             {s3Only: true}, // endpoint and scheme are read together by normalizeEndpoint
	"scheme":               {s3Only: true},
	"region":               {s3Only: true, set: setRegion},
	"profile":              {s3Only: true, set: setNonEmpty(func(u *URL) *string { return &u.Profile })},
	"addressing-style":     {s3Only: true, set: setOneOf(func(u *URL) *string { return &u.AddressingStyle }, "auto", "path", "virtual")},
	"storage-class":        {s3Only: true, set: setToken(func(u *URL) *string { return &u.StorageClass })},
	"multipart-chunk-size": {s3Only: true, set: setPartSize},
	"buffer-size":          {s3Only: true, set: setPartSize},
	"tls-certificate":      {s3Only: true, set: setNonEmpty(func(u *URL) *string { return &u.TLSCertificate })},
	"tls-private-key":      {s3Only: true, set: setNonEmpty(func(u *URL) *string { return &u.TLSPrivateKey })},

	"secret-key":           {set: setSecretKey},
	"secret-keys":          {set: setSecretKeys},
	"compression":          {set: setOneOf(func(u *URL) *string { return &u.Compression }, "xz", "zstd", "none")},
	"compression-level":    {set: setCompressionLevel},
	"parallel-compression": {set: setBool(func(u *URL) *bool { return &u.ParallelCompression })},
	"narinfo-compression":  {set: setNarinfoCompression},
	"write-nar-listing":    {set: setWriteNARListing},
	"priority":             {set: setPriority},
	"want-mass-query":      {set: setWantMassQuery},
	"store":                {set: setStoreDir},

	// What nixbucket already does, asked for: accepted (see ParseURL).
	"multipart-upload": {s3Only: true, set: onlyBool(true, "nixbucket always uploads an object larger than one part (multipart-chunk-size) as a multipart upload; drop the parameter or set it to true")},
	"index-debug-info": {set: onlyBool(false, "nixbucket does not write debuginfo indexes; drop the parameter or set it to false")},
	"local-nar-cache":  {set: onlyEmpty("nixbucket keeps no local copies of the NARs it reads (a setting of Nix's reads); drop the parameter")},
	"ls-compression":   {set: setNixCompression},
	"log-compression":  {set: setLogCompression},

	// Settings nixbucket cannot honour: refused whatever their value.
	"multipart-threshold":  {s3Only: true, refused: true, set: refuse("nixbucket sends an object in one PUT when it fits in one part and in parts otherwise; choose the part size with multipart-chunk-size")},
	"path-info-cache-size": {refused: true, set: refuse("it sizes Nix's in-memory narinfo cache, which nixbucket does not have; drop the parameter")},
	"system-features":      {refused: true, set: refuse("a binary cache builds nothing; drop the parameter")},
	"trusted":              {refused: true, set: refuse("it tells Nix to take unsigned paths from a substituter: put it in Nix's substituters line (key nixconf keeps it), not in nixbucket's URL")},
}

// ParseURL parses a Nix-style store URL:
//
//	s3://BUCKET?endpoint=HOST[:PORT]|URL&region=R&scheme=http|https&profile=P&secret-key=FILE&compression=xz|zstd|none&…
//	file:///DIR?compression=…&secret-key=…
//
// Every parameter of Nix's S3 and file stores
// (src/libstore/s3-binary-cache-store.hh, binary-cache-store.hh) is either
// honoured or refused with an error naming it and saying why; none is
// accepted and then ignored:
//
//   - honoured: endpoint, scheme, region, profile, addressing-style,
//     storage-class, multipart-chunk-size (alias buffer-size),
//     narinfo-compression=zstd|br|gzip (narinfos written with that
//     Content-Encoding, as Nix does; none by default; xz is refused, Nix
//     2.34 and later cannot read it; s3:// only),
//     tls-certificate and tls-private-key (a client certificate for mutual
//     TLS, both or neither), secret-key, secret-keys, compression,
//     compression-level, priority, want-mass-query, store.
//   - accepted where the value asks for what nixbucket does anyway:
//     multipart-upload=true (objects larger than a part always go in
//     parts), index-debug-info=false (no debuginfo/ index is written),
//     local-nar-cache= empty, write-nar-listing=false (no .ls listings),
//     parallel-compression (large NARs are always compressed on every
//     core). ls-compression takes Nix's method names and is accepted
//     whatever the method: it compresses .ls listings, which nixbucket
//     never writes (write-nar-listing=true is refused), so the result is
//     the one Nix gives.
//   - log-compression takes Nix's method names; on s3:// it is the
//     Content-Encoding of the build logs push --logs writes (none by
//     default; push refuses the methods it cannot write, see
//     push.CheckLogCompression); a file:// cache's logs are written as
//     they are, as Nix does.
//   - refused whatever the value: multipart-threshold (an object goes in
//     one PUT when it fits in one part), path-info-cache-size (Nix's
//     in-memory narinfo cache), system-features (a cache builds nothing),
//     trusted (a setting of Nix's substituters, kept by key nixconf).
//
// An unknown parameter, a repeated one or a bad value is an error naming
// it.
func ParseURL(raw string) (*URL, error) {
	pu, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadURL, raw, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadURL, raw, fmt.Sprintf(format, a...))
	}
	if pu.Opaque != "" || pu.User != nil || pu.Fragment != "" || pu.RawFragment != "" {
		return nil, bad("want s3://BUCKET?PARAMS or file:///DIR?PARAMS")
	}
	u := &URL{Scheme: pu.Scheme, CompressionLevel: -1, Compression: DefaultCompression}
	switch pu.Scheme {
	case SchemeS3:
		if err := checkBucketName(pu.Host); err != nil {
			return nil, bad("%v", err)
		}
		if pu.Path != "" && pu.Path != "/" {
			return nil, bad("a key prefix (%q) is not supported; use s3://BUCKET", pu.Path)
		}
		u.Bucket = pu.Host
		u.AddressingStyle = "auto"
		u.PartSize = MinPartSize
	case SchemeFile:
		if pu.Host != "" && pu.Host != "localhost" {
			return nil, bad("host %q in a file URL; want file:///ABSOLUTE/DIR", pu.Host)
		}
		if !strings.HasPrefix(pu.Path, "/") || strings.ContainsRune(pu.Path, 0) {
			return nil, bad("want file:///ABSOLUTE/DIR")
		}
		u.Dir = path.Clean(pu.Path)
	default:
		return nil, bad("unsupported scheme %q; want s3:// or file://", pu.Scheme)
	}

	q, err := url.ParseQuery(pu.RawQuery)
	if err != nil {
		return nil, bad("parsing parameters: %v", err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		vs := q[name]
		p, ok := params[name]
		if !ok || (p.s3Only && u.Scheme != SchemeS3) {
			return nil, bad("unknown parameter %q; valid parameters for %s:// are %s",
				name, u.Scheme, strings.Join(validParams(u.Scheme), ", "))
		}
		if len(vs) != 1 {
			return nil, bad("parameter %q given %d times", name, len(vs))
		}
		if p.set == nil {
			continue
		}
		if err := p.set(u, vs[0]); err != nil {
			return nil, bad("parameter %s=%q: %v", name, vs[0], err)
		}
	}
	if (u.TLSCertificate == "") != (u.TLSPrivateKey == "") {
		return nil, bad("tls-certificate and tls-private-key go together: give both (a client certificate and its key) or neither")
	}
	if q.Has("multipart-chunk-size") && q.Has("buffer-size") && q.Get("multipart-chunk-size") != q.Get("buffer-size") {
		return nil, bad("multipart-chunk-size and its alias buffer-size differ")
	}
	if u.Scheme == SchemeS3 {
		ep, err := normalizeEndpoint(q.Get("endpoint"), q.Get("scheme"), q.Has("scheme"))
		if err != nil {
			return nil, bad("%v", err)
		}
		u.Endpoint = ep
		if u.Region == "" {
			u.Region = DefaultRegion
		}
	}
	return u, nil
}

// validParams lists the parameter names accepted for scheme, sorted.
func validParams(scheme string) []string {
	var out []string
	for name, p := range params {
		if !p.refused && (!p.s3Only || scheme == SchemeS3) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// checkBucketName accepts S3 bucket names, leniently (legacy AWS names and
// Garage allow upper case and underscores).
func checkBucketName(b string) error {
	if b == "" {
		return errors.New("missing bucket name; want s3://BUCKET")
	}
	if len(b) > 255 {
		return errors.New("bucket name longer than 255 characters")
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("bucket name %q has character %q; want letters, digits, '.', '-' or '_'", b, c)
		}
	}
	return nil
}

// normalizeEndpoint turns endpoint= (a URL, or a bare HOST[:PORT]) and
// scheme= into "SCHEME://HOST[:PORT]", or "" for none.
func normalizeEndpoint(ep, scheme string, hasScheme bool) (string, error) {
	if hasScheme && scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("parameter scheme=%q: want http or https", scheme)
	}
	if ep == "" {
		if hasScheme && scheme != "https" {
			return "", errors.New("parameter scheme=http needs an endpoint")
		}
		return "", nil
	}
	if !strings.Contains(ep, "://") {
		if scheme == "" {
			scheme = "https"
		}
		ep = scheme + "://" + ep
	}
	e, err := url.Parse(ep)
	if err != nil {
		return "", fmt.Errorf("parameter endpoint: %w", err)
	}
	switch {
	case e.Scheme != "http" && e.Scheme != "https":
		return "", fmt.Errorf("parameter endpoint=%q: scheme must be http or https", ep)
	case hasScheme && e.Scheme != scheme:
		return "", fmt.Errorf("parameter endpoint=%q contradicts scheme=%s", ep, scheme)
	case e.User != nil:
		return "", errors.New("parameter endpoint: credentials in the endpoint are not allowed; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or profile=")
	case e.Hostname() == "" || e.Opaque != "":
		return "", fmt.Errorf("parameter endpoint=%q: missing host", ep)
	case (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.ForceQuery || e.Fragment != "":
		return "", fmt.Errorf("parameter endpoint=%q: want SCHEME://HOST[:PORT] with no path", ep)
	}
	host := e.Hostname()
	if strings.ContainsAny(host, "/?#@ %") {
		return "", fmt.Errorf("parameter endpoint=%q: bad host", ep)
	}
	if p := e.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", fmt.Errorf("parameter endpoint=%q: bad port %q", ep, p)
		}
		return e.Scheme + "://" + net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
	}
	if strings.HasSuffix(e.Host, ":") {
		return "", fmt.Errorf("parameter endpoint=%q: empty port", ep)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return e.Scheme + "://" + host, nil
}

// setSecretKey reads secret-key=FILE, which comes before secret-keys'
// files (parameters are read in name order).
func setSecretKey(u *URL, v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	u.SecretKeyFiles = append(u.SecretKeyFiles, v)
	return nil
}

// setSecretKeys reads Nix's secret-keys=F1,F2,….
func setSecretKeys(u *URL, v string) error {
	for _, f := range strings.Split(v, ",") {
		if f == "" {
			return errors.New("an empty file name; want FILE1,FILE2,…")
		}
		u.SecretKeyFiles = append(u.SecretKeyFiles, f)
	}
	return nil
}

func setRegion(u *URL, v string) error {
	if v == "" || strings.ContainsAny(v, "/ \t\r\n") {
		return errors.New("want a region name such as us-east-1 or garage")
	}
	u.Region = v
	return nil
}

func setNonEmpty(field func(*URL) *string) func(*URL, string) error {
	return func(u *URL, v string) error {
		if v == "" {
			return errors.New("empty value")
		}
		*field(u) = v
		return nil
	}
}

func setToken(field func(*URL) *string) func(*URL, string) error {
	return func(u *URL, v string) error {
		if v == "" || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return errors.New("want a non-empty token without spaces")
		}
		*field(u) = v
		return nil
	}
}

func setOneOf(field func(*URL) *string, valid ...string) func(*URL, string) error {
	return func(u *URL, v string) error {
		if !slices.Contains(valid, v) {
			return fmt.Errorf("want one of %s", strings.Join(valid, ", "))
		}
		*field(u) = v
		return nil
	}
}

func setBool(field func(*URL) *bool) func(*URL, string) error {
	return func(u *URL, v string) error {
		b, err := parseBool(v)
		*field(u) = b
		return err
	}
}

// parseBool accepts Nix's spellings of a Boolean setting.
func parseBool(v string) (bool, error) {
	switch v {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, errors.New("want true or false")
}

func setPartSize(u *URL, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < MinPartSize || n > MaxPartSize {
		return fmt.Errorf("want a size in bytes from %d (5 MiB) to %d (5 GiB)", MinPartSize, MaxPartSize)
	}
	u.PartSize = n
	return nil
}

func setCompressionLevel(u *URL, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 || n > 22 {
		return errors.New("want -1 (the codec's default) or a level from 0 to 22")
	}
	u.CompressionLevel = n
	return nil
}

// setNarinfoCompression reads narinfo-compression: none, or (s3:// only)
// zstd, br or gzip, the Content-Encodings every Nix decodes. xz is
// refused: Nix 2.34 and later no longer decode it. A file:// cache's
// narinfos are files Nix reads as they are.
func setNarinfoCompression(u *URL, v string) error {
	switch v {
	case "none", "":
		return nil
	case "zstd", "br", "gzip":
		if u.Scheme != SchemeS3 {
			return errors.New("a file:// cache's narinfos are files that Nix reads as they are, uncompressed; drop the parameter or use none")
		}
		u.NarinfoCompression = v
		return nil
	case "xz":
		return errors.New("narinfos stored with Content-Encoding xz cannot be read by Nix 2.34 and later; use zstd, br or gzip")
	}
	return errors.New("want none, zstd, br or gzip")
}

// setWriteNARListing accepts only false: nixbucket writes no <hash>.ls
// listings.
func setWriteNARListing(_ *URL, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	if b {
		return errors.New("nixbucket does not write .ls NAR listings; drop the parameter or set it to false")
	}
	return nil
}

func setStoreDir(u *URL, v string) error {
	if !strings.HasPrefix(v, "/") || path.Clean(v) != v || v == "/" || strings.ContainsAny(v, "\x00\n") {
		return errors.New("want an absolute, clean store directory such as /nix/store")
	}
	u.StoreDir = v
	return nil
}

func setPriority(u *URL, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1<<30 {
		return errors.New("want a non-negative integer")
	}
	u.Priority = &n
	return nil
}

func setWantMassQuery(u *URL, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	u.WantMassQuery = &b
	return nil
}

// String renders u as a store URL that ParseURL reads back to an equal
// URL. Defaults are left out. Nothing in a store URL is secret: the
// signing key is named by its file path and credentials never appear.
func (u *URL) String() string {
	var q []string
	add := func(k, v string) {
		q = append(q, k+"="+escapeQuery(v))
	}
	var base string
	switch u.Scheme {
	case SchemeS3:
		base = "s3://" + u.Bucket
		if u.Endpoint != "" {
			add("endpoint", u.Endpoint)
		}
		if u.Region != DefaultRegion && u.Region != "" {
			add("region", u.Region)
		}
		if u.Profile != "" {
			add("profile", u.Profile)
		}
		if u.AddressingStyle != "auto" && u.AddressingStyle != "" {
			add("addressing-style", u.AddressingStyle)
		}
		if u.StorageClass != "" {
			add("storage-class", u.StorageClass)
		}
		if u.PartSize != MinPartSize && u.PartSize != 0 {
			add("multipart-chunk-size", strconv.FormatInt(u.PartSize, 10))
		}
		if u.TLSCertificate != "" {
			add("tls-certificate", u.TLSCertificate)
		}
		if u.TLSPrivateKey != "" {
			add("tls-private-key", signing.SafeKeyPath(u.TLSPrivateKey))
		}
	case "http", "https": // an HTTP binary cache (package httpcache): Endpoint is its URL
		base = u.Endpoint
	default:
		base = (&url.URL{Scheme: u.Scheme, Path: u.Dir}).String()
	}
	// Key text given by mistake is not shown.
	switch len(u.SecretKeyFiles) {
	case 0:
	case 1:
		add("secret-key", signing.SafeKeyPath(u.SecretKeyFiles[0]))
	default:
		shown := make([]string, len(u.SecretKeyFiles))
		for i, f := range u.SecretKeyFiles {
			shown[i] = signing.SafeKeyPath(f)
		}
		add("secret-keys", strings.Join(shown, ","))
	}
	if u.Compression != DefaultCompression && u.Compression != "" {
		add("compression", u.Compression)
	}
	if u.CompressionLevel != -1 {
		add("compression-level", strconv.Itoa(u.CompressionLevel))
	}
	if u.ParallelCompression {
		add("parallel-compression", "true")
	}
	if u.NarinfoCompression != "" {
		add("narinfo-compression", u.NarinfoCompression)
	}
	if u.LogCompression != "" {
		add("log-compression", u.LogCompression)
	}
	if u.Priority != nil {
		add("priority", strconv.Itoa(*u.Priority))
	}
	if u.WantMassQuery != nil {
		add("want-mass-query", strconv.FormatBool(*u.WantMassQuery))
	}
	if u.StoreDir != "" {
		add("store", u.StoreDir)
	}
	if len(q) == 0 {
		return base
	}
	slices.Sort(q)
	return base + "?" + strings.Join(q, "&")
}

// escapeQuery escapes a query value, leaving ':' and '/' (legal in a
// query), and IPv6 brackets readable.
func escapeQuery(v string) string {
	e := url.QueryEscape(v)
	return strings.NewReplacer("%3A", ":", "%2F", "/", "%5B", "[", "%5D", "]").Replace(e)
}

// onlyBool accepts a Boolean parameter whose value is want, and refuses
// the other value saying why.
func onlyBool(want bool, why string) func(*URL, string) error {
	return func(_ *URL, v string) error {
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		if b != want {
			return errors.New(why)
		}
		return nil
	}
}

// onlyEmpty accepts an empty value (the default) and refuses any other,
// saying why.
func onlyEmpty(why string) func(*URL, string) error {
	return func(_ *URL, v string) error {
		if v != "" {
			return errors.New(why)
		}
		return nil
	}
}

// refuse refuses every value, saying why.
func refuse(why string) func(*URL, string) error {
	return func(*URL, string) error { return errors.New(why) }
}

// nixCompressions are the method names Nix accepts for its compression
// settings (src/libutil/compression-algo.hh), "" its default.
var nixCompressions = []string{"", "none", "br", "bzip2", "compress", "grzip", "gzip", "lrzip", "lz4", "lzip", "lzma", "lzop", "xz", "zstd"}

// setNixCompression checks ls-compression=: it compresses objects
// nixbucket never writes (see ParseURL).
func setNixCompression(_ *URL, v string) error {
	if !slices.Contains(nixCompressions, v) {
		return fmt.Errorf("want one of %s", strings.Join(nixCompressions[1:], ", "))
	}
	return nil
}

// setLogCompression reads log-compression=: a method Nix knows, kept as
// the logs' Content-Encoding on s3:// ("" for none), as Nix's S3 store
// does; Nix's file:// store writes logs as they are.
func setLogCompression(u *URL, v string) error {
	if err := setNixCompression(u, v); err != nil {
		return err
	}
	if u.Scheme == SchemeS3 && v != "none" {
		u.LogCompression = v
	}
	return nil
}
