package publish

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrBadSourceURL is returned (wrapped) for a source link template that
// cannot be used.
var ErrBadSourceURL = errors.New("invalid source URL template")

// SourceTemplate makes one source link of each version on the release
// page, such as the seed's links to the forge
// (https://git.deuxfleurs.fr/Deuxfleurs/garage/src/tag/v0.8.0) and to its
// archives (…/archive/v0.8.0.zip, …/archive/v0.8.0.tar.gz).
type SourceTemplate struct {
	// Label is the link's text.
	Label string
	// URL is an http or https URL in which {version} stands for the
	// version (path-escaped) and {type} for the version's category type:
	// "tag" (stable and extra versions) or "commit" (development ones).
	URL string
}

// placeholder matches a {name} in a template.
var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// archiveSuffixes name the default labels of archive links.
var archiveSuffixes = []string{".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tgz", ".zip"}

// ParseSourceTemplate reads a source link template, "[LABEL=]URL": URL as
// in SourceTemplate, with {version} at least once and no other
// placeholder than {version} and {type}. Without a LABEL, the label is the
// archive extension URL ends with (".zip", ".tar.gz"…), else "source". A
// LABEL holds no ':' or '/', so the '=' of a URL's query never reads as
// one.
func ParseSourceTemplate(s string) (SourceTemplate, error) {
	label, raw := "", s
	if l, rest, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(l, ":/") {
		label, raw = strings.TrimSpace(l), rest
		if label == "" {
			return SourceTemplate{}, fmt.Errorf("%w %q: empty label before '='", ErrBadSourceURL, s)
		}
	}
	if !strings.HasPrefix(raw, "https://") && !strings.HasPrefix(raw, "http://") {
		return SourceTemplate{}, fmt.Errorf("%w %q: want an http:// or https:// URL", ErrBadSourceURL, s)
	}
	if !strings.Contains(raw, "{version}") {
		return SourceTemplate{}, fmt.Errorf("%w %q: no {version} in it", ErrBadSourceURL, s)
	}
	for _, p := range placeholder.FindAllString(raw, -1) {
		if p != "{version}" && p != "{type}" {
			return SourceTemplate{}, fmt.Errorf("%w %q: unknown placeholder %s (want {version} or {type})", ErrBadSourceURL, s, p)
		}
	}
	t := SourceTemplate{Label: label, URL: raw}
	if u, err := url.Parse(t.Link("v1.0.0", "tag").URL); err != nil || u.Host == "" {
		return SourceTemplate{}, fmt.Errorf("%w %q: not a URL with a host", ErrBadSourceURL, s)
	}
	if t.Label == "" {
		t.Label = "source"
		for _, suf := range archiveSuffixes {
			if strings.HasSuffix(raw, suf) {
				t.Label = suf
				break
			}
		}
	}
	return t, nil
}

// Link returns the link of version, of category type typ ("tag" or
// "commit").
func (t SourceTemplate) Link(version, typ string) SourceLink {
	r := strings.NewReplacer("{version}", url.PathEscape(version), "{type}", url.PathEscape(typ))
	return SourceLink{Label: t.Label, URL: r.Replace(t.URL)}
}
