package publish

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Class is the kind of a release version.
type Class string

// Version classes.
const (
	// Stable is a release: "v" and 3 or 4 dot-separated decimal numbers,
	// such as v0.10.0 or v1.2.3.4.
	Stable Class = "stable"
	// Development is a build of a commit: exactly 40 lower-case hex digits.
	Development Class = "development"
	// Extra is any other version: v0.8.0-rc1, convert_db, v1x2x3.
	Extra Class = "extra"
)

// Classify returns the class of version v. Unlike the seed's regex, whose
// unescaped dots matched any character, the dots of a stable version are
// literal.
func Classify(v string) Class {
	if _, ok := stableNumbers(v); ok {
		return Stable
	}
	if isCommit(v) {
		return Development
	}
	return Extra
}

// stableNumbers splits a stable version into its decimal components.
func stableNumbers(v string) ([]string, bool) {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return nil, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 && len(parts) != 4 {
		return nil, false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
	}
	return parts, true
}

func isCommit(v string) bool {
	return len(v) == 40 && strings.Trim(v, "0123456789abcdef") == ""
}

// CompareStable compares two stable versions by number, component by
// component, a missing fourth component counting as less than any: it
// returns -1 if a < b, +1 if a > b, and 0 if they are numerically equal.
// Numbers may have any length. It panics if either is not Stable.
func CompareStable(a, b string) int {
	pa, ok1 := stableNumbers(a)
	pb, ok2 := stableNumbers(b)
	if !ok1 || !ok2 {
		panic("publish: CompareStable of a version that is not stable")
	}
	for i := range min(len(pa), len(pb)) {
		if c := compareDecimal(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(pa), len(pb))
}

// compareDecimal compares two strings of decimal digits as numbers.
func compareDecimal(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// Dated is a version with the date it was published.
type Dated struct {
	// Version is the version string, e.g. v0.8.0.
	Version string
	// Date is when the version was published.
	Date time.Time
}

// SortVersions sorts versions in place in the order of a release page:
// stable versions first, by number, newest first; then extra versions,
// then development versions, each by date, newest first. Ties are broken
// by name, so the order is total.
func SortVersions(vs []Dated) {
	rank := map[Class]int{Stable: 0, Extra: 1, Development: 2}
	slices.SortStableFunc(vs, func(a, b Dated) int {
		ca, cb := Classify(a.Version), Classify(b.Version)
		if c := cmp.Compare(rank[ca], rank[cb]); c != 0 {
			return c
		}
		if ca == Stable {
			if c := CompareStable(b.Version, a.Version); c != 0 {
				return c
			}
		} else if c := b.Date.Compare(a.Date); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
}
