package publish

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Build is one published file of a version, in the seed's JSON shape
// (every seed field a string) plus nixbucket's additions.
type Build struct {
	// Date and Time are when the object was written (UTC, "2006-01-02",
	// "15:04:05").
	Date string `json:"date"`
	Time string `json:"time"`
	// Size is the object's length in bytes, in decimal.
	Size string `json:"size"`
	// Path is the object's key.
	Path string `json:"path"`
	// Root is the first component of the key (the prefix).
	Root string `json:"root"`
	// Version, Platform and Binary are the key's components.
	Version  string `json:"version"`
	Platform string `json:"platform"`
	Binary   string `json:"binary"`
	// URL is the link to the object: the base URL and the key, or the key
	// relative to the index page.
	URL string `json:"url"`
	// PlatformName is the platform as an OCI platform ("linux/amd64") when
	// the triple is known, else the triple.
	PlatformName string `json:"platform_name"`
	// ChecksumURL links to the .sha256 file, "" if there is none.
	ChecksumURL string `json:"sha256_url,omitempty"`
	// SHA256 is the file's checksum read from its .sha256 file, if any.
	SHA256 string `json:"sha256,omitempty"`
}

// Release is one version and its builds, in key order.
type Release struct {
	// Version is the version string.
	Version string `json:"version"`
	// Class is the version's Class.
	Class Class `json:"class"`
	// Date is the newest write of its objects (RFC 3339, UTC).
	Date time.Time `json:"date"`
	// Builds are the version's files.
	Builds []Build `json:"builds"`
	// Sources link to the version's sources (IndexOptions.Sources), in
	// the order of the templates.
	Sources []SourceLink `json:"sources,omitempty"`
}

// SourceLink is one link to a version's sources.
type SourceLink struct {
	// Label is the link's text, e.g. ".tar.gz".
	Label string `json:"label"`
	// URL is the link.
	URL string `json:"url"`
}

// Category is one section of the release page.
type Category struct {
	// Name is "Release", "Extra" or "Development".
	Name string `json:"name"`
	// Hide is true for sections shown collapsed.
	Hide bool `json:"hide"`
	// Type is "tag" or "commit", as in the seed.
	Type string `json:"type"`
	// Description explains the category.
	Description string `json:"description"`
	// Builds are the category's versions, in page order.
	Builds []Release `json:"builds"`
}

// Index is the release index: the three categories, in page order.
type Index []Category

// IndexOptions configure BuildIndex.
type IndexOptions struct {
	// Prefix is the release prefix; DefaultPrefix if empty.
	Prefix string
	// BaseURL, if set, is prepended to keys to make absolute links (e.g.
	// "https://garagehq.deuxfleurs.fr/"); else links are relative to the
	// index page.
	BaseURL string
	// Sources make each version's source links, as the seed's page had
	// (the tag or commit in the forge, .zip and .tar.gz archives); none
	// if empty.
	Sources []SourceTemplate
	// Log receives a line for each object that does not fit the layout.
	Log *slog.Logger
}

// IndexKeys returns the keys of the JSON and HTML index for prefix:
// "_releases/" gives _releases.json and _releases.html.
func IndexKeys(prefix string) (jsonKey, htmlKey string, err error) {
	p, err := NormalizePrefix(prefix)
	if err != nil {
		return "", "", err
	}
	base := strings.TrimSuffix(p, "/")
	return base + ".json", base + ".html", nil
}

// platformNames maps target triples to the names the seed's page shows.
var platformNames = map[string]string{
	"x86_64-unknown-linux-musl":       "linux/amd64",
	"i686-unknown-linux-musl":         "linux/386",
	"aarch64-unknown-linux-musl":      "linux/arm64",
	"armv6l-unknown-linux-musleabihf": "linux/arm",
	"arm-unknown-linux-musleabihf":    "linux/arm",
}

// PlatformName returns the pretty name of a target triple, as the seed's
// build_index.nix: linux/amd64, linux/386, linux/arm64, linux/arm, else
// the triple itself.
func PlatformName(triple string) string {
	if n, ok := platformNames[triple]; ok {
		return n
	}
	return triple
}

// BuildIndex lists prefix in b and builds the index. Keys must be
// <prefix><version>/<target>/<file>; others are logged and skipped.
// <file>.sha256 objects are attached to their binary as its checksum.
func BuildIndex(ctx context.Context, b s3cache.Bucket, opts IndexOptions) (Index, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	prefix, err := NormalizePrefix(opts.Prefix)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, htmlKey, _ := IndexKeys(prefix)
	link := linker(opts.BaseURL, path.Dir(htmlKey))

	var objs, sums []s3cache.ObjectInfo
	err = b.List(ctx, prefix, func(o s3cache.ObjectInfo) error {
		parts := strings.Split(strings.TrimPrefix(o.Key, prefix), "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			log.Warn("skipping object outside the release layout", "key", o.Key)
			return nil
		}
		if strings.HasSuffix(o.Key, ChecksumSuffix) {
			sums = append(sums, o)
		} else {
			objs = append(objs, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing releases under %s: %w", prefix, err)
	}
	hasSum := map[string]bool{}
	for _, s := range sums {
		hasSum[strings.TrimSuffix(s.Key, ChecksumSuffix)] = true
	}

	byVersion := map[string]*Release{}
	var order []string
	for _, o := range objs {
		parts := strings.Split(strings.TrimPrefix(o.Key, prefix), "/")
		v := parts[0]
		r := byVersion[v]
		if r == nil {
			r = &Release{Version: v, Class: Classify(v)}
			byVersion[v] = r
			order = append(order, v)
		}
		t := o.LastModified.UTC()
		if t.After(r.Date) {
			r.Date = t
		}
		bd := Build{
			Date: t.Format(time.DateOnly), Time: t.Format(time.TimeOnly),
			Size: strconv.FormatInt(o.Size, 10), Path: o.Key,
			Root: strings.TrimSuffix(prefix, "/"), Version: v, Platform: parts[1], Binary: parts[2],
			URL: link(o.Key), PlatformName: PlatformName(parts[1]),
		}
		if hasSum[o.Key] {
			bd.ChecksumURL = link(o.Key + ChecksumSuffix)
		}
		r.Builds = append(r.Builds, bd)
	}

	// Read the checksums, a few at a time.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(checksumReaders)
	for _, v := range order {
		for i := range byVersion[v].Builds {
			bd := &byVersion[v].Builds[i]
			if bd.ChecksumURL == "" {
				continue
			}
			g.Go(func() error {
				bd.SHA256 = readChecksum(gctx, b, bd.Path+ChecksumSuffix, log)
				return gctx.Err()
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("reading checksums under %s: %w", prefix, err)
	}

	dated := make([]Dated, 0, len(order))
	for _, v := range order {
		dated = append(dated, Dated{Version: v, Date: byVersion[v].Date})
	}
	SortVersions(dated)
	ix := Index{
		{Name: "Release", Type: "tag", Description: "Release builds are the official builds, they are tailored for productions and are the most tested.", Builds: []Release{}},
		{Name: "Extra", Hide: true, Type: "tag", Description: "Extra builds are built on demand to test a specific feature or a specific need.", Builds: []Release{}},
		{Name: "Development", Hide: true, Type: "commit", Description: "Development builds are built periodically. Use them if you want to test a specific feature that is not yet released.", Builds: []Release{}},
	}
	cat := map[Class]int{Stable: 0, Extra: 1, Development: 2}
	for _, d := range dated {
		r := byVersion[d.Version]
		i := cat[r.Class]
		for _, st := range opts.Sources {
			r.Sources = append(r.Sources, st.Link(r.Version, ix[i].Type))
		}
		ix[i].Builds = append(ix[i].Builds, *r)
	}
	return ix, nil
}

// checksumReaders bounds the concurrent reads of checksum files.
const checksumReaders = 8

// readChecksum returns the hex digest of a sha256sum file, "" if it cannot
// be read or parsed.
func readChecksum(ctx context.Context, b s3cache.Bucket, key string, log *slog.Logger) string {
	data, err := s3cache.ReadSmall(ctx, b, key, 4096)
	if err != nil {
		log.Warn("reading checksum", "key", key, "err", err)
		return ""
	}
	sum, ok := ParseChecksum(string(data))
	if !ok {
		log.Warn("malformed checksum file", "key", key)
	}
	return sum
}

// ParseChecksum returns the digest of the first line of a sha256sum file
// ("<64 hex>  <name>" or "<64 hex> *<name>"), lower-cased.
func ParseChecksum(s string) (string, bool) {
	line, _, _ := strings.Cut(s, "\n")
	sum, rest, ok := strings.Cut(line, " ")
	if !ok || len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" {
		return "", false
	}
	if !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "*") || len(rest) < 2 {
		return "", false
	}
	return strings.ToLower(sum), true
}

// linker returns a function mapping a key to its link: base+key (each path
// component escaped) if base is set, else the key relative to dir (the
// directory of the index page, "." for the bucket root).
func linker(base, dir string) func(string) string {
	return func(key string) string {
		esc := (&url.URL{Path: key}).EscapedPath()
		if base != "" {
			return strings.TrimSuffix(base, "/") + "/" + esc
		}
		rel := key
		if dir != "." {
			rel = strings.TrimPrefix(key, dir+"/")
		}
		// "./" keeps a first component with a colon from reading as a scheme.
		return "./" + (&url.URL{Path: rel}).EscapedPath()
	}
}

// WriteJSON writes the index as indented JSON.
func (ix Index) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ix); err != nil {
		return fmt.Errorf("writing release JSON: %w", err)
	}
	return nil
}

//go:embed releases.html.tmpl
var pageSource string

var page = template.Must(template.New("releases").Parse(pageSource))

// PageData is what the release page template receives.
type PageData struct {
	// Title is the page's title.
	Title string
	// Index is the release index.
	Index Index
}

// WriteHTML writes the release page: a static, self-contained HTML page
// (inline CSS, no script) where every string from the bucket is escaped.
func (ix Index) WriteHTML(w io.Writer, title string) error {
	if err := page.Execute(w, PageData{Title: title, Index: ix}); err != nil {
		return fmt.Errorf("writing release page: %w", err)
	}
	return nil
}

// PublishIndex builds the index of opts.Prefix and writes its HTML and
// JSON next to the prefix (IndexKeys), with their media types and
// IndexCacheControl: the page first, the JSON last, so that a script that
// reads the JSON never learns of a version the page does not show yet
// (if writing the page fails, neither changes). The page's title is
// title, "Releases" if empty.
func PublishIndex(ctx context.Context, b s3cache.Bucket, opts IndexOptions, title string) (Index, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	jsonKey, htmlKey, err := IndexKeys(opts.Prefix)
	if err != nil {
		return nil, err
	}
	ix, err := BuildIndex(ctx, b, opts)
	if err != nil {
		return nil, err
	}
	if title == "" {
		title = "Releases"
	}
	var js, hs bytes.Buffer
	if err := ix.WriteHTML(&hs, title); err != nil {
		return nil, err
	}
	if err := ix.WriteJSON(&js); err != nil {
		return nil, err
	}
	for _, o := range []struct {
		key, ctype string
		data       []byte
	}{
		{htmlKey, HTMLContentType, hs.Bytes()},
		{jsonKey, JSONContentType, js.Bytes()},
	} {
		err := b.Put(ctx, o.key, bytes.NewReader(o.data), int64(len(o.data)),
			s3cache.PutOptions{ContentType: o.ctype, CacheControl: IndexCacheControl})
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", o.key, err)
		}
	}
	return ix, nil
}

// Media types of the release page and JSON.
const (
	// HTMLContentType is the media type of the release page.
	HTMLContentType = "text/html; charset=utf-8"
	// JSONContentType is the media type of the release JSON.
	JSONContentType = "application/json"
)
