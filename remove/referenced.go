package remove

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nixbucket/nixbucket/storepath"
)

// ErrReferenced is returned (wrapped in a *ReferencedError) when other
// narinfos refer to a path asked for and Options.WithReferrers is not
// set; nothing is deleted.
var ErrReferenced = errors.New("still referenced")

// ShownReferrers is how many referrers a ReferencedError's message names;
// it counts the rest.
const ShownReferrers = 10

// ReferencedError says which paths in the cache refer to the ones asked
// for (Referrers, directly or through others), which --with-referrers
// would remove too.
type ReferencedError struct {
	// Paths are the store paths asked for that have referrers.
	Paths []string
	// Referrers are the store paths that refer to them, directly or
	// through others, sorted.
	Referrers []string
}

func (e *ReferencedError) Error() string {
	what := e.Paths[0]
	if len(e.Paths) > 1 {
		what = fmt.Sprintf("%d paths (%s)", len(e.Paths), listed(e.Paths, 3))
	}
	return fmt.Sprintf("refusing to remove %s: %d %s in the cache %s to %s, directly or through others: %s; "+
		"--with-referrers removes %s too (with --dry-run, lists all)",
		what, len(e.Referrers), plural(len(e.Referrers), "path", "paths"), plural(len(e.Referrers), "refers", "refer"),
		plural(len(e.Paths), "it", "them"), listed(e.Referrers, ShownReferrers),
		plural(len(e.Referrers), "it", "them"))
}

func (e *ReferencedError) Unwrap() error { return ErrReferenced }

// referenced is the error for removing the paths asked for without their
// referrers (remove holds both).
func (pl *plan) referenced(remove map[string]bool) error {
	refs := map[string]bool{} // asked for and referred to by one removed
	e := &ReferencedError{}
	for h := range remove {
		if pl.asked[h] {
			continue
		}
		e.Referrers = append(e.Referrers, pl.infos[h].StorePath)
		for _, ref := range storepath.HashParts(pl.infos[h].References) {
			if pl.asked[ref] {
				refs[ref] = true
			}
		}
	}
	for h := range refs {
		e.Paths = append(e.Paths, pl.infos[h].StorePath)
	}
	slices.Sort(e.Paths)
	slices.Sort(e.Referrers)
	return e
}
