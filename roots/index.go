package roots

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Root is one root name's state in the bucket.
type Root struct {
	// Name is the root's name.
	Name string `json:"name"`
	// Pinned reports whether the root is pinned.
	Pinned bool `json:"pinned"`
	// Manifests are its manifests, newest first.
	Manifests []Ref `json:"manifests"`
}

// Index is every root in a bucket, from one listing of roots/.
type Index struct {
	// Roots are sorted by name.
	Roots []*Root
}

// Get returns the root called name, or nil.
func (x *Index) Get(name string) *Root {
	for _, r := range x.Roots {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Add records a key found under Prefix; it returns ParseKey's error.
func (x *Index) Add(o s3cache.ObjectInfo) error {
	ref, pinned, err := ParseKey(o.Key)
	if err != nil {
		return err
	}
	ref.Size = o.Size
	r := x.Get(ref.Name)
	if r == nil {
		r = &Root{Name: ref.Name}
		x.Roots = append(x.Roots, r)
	}
	if pinned {
		r.Pinned = true
		return nil
	}
	r.Manifests = append(r.Manifests, ref)
	return nil
}

// Sort orders roots by name and each root's manifests newest first.
func (x *Index) Sort() {
	slices.SortFunc(x.Roots, func(a, b *Root) int { return strings.Compare(a.Name, b.Name) })
	for _, r := range x.Roots {
		slices.SortFunc(r.Manifests, func(a, b Ref) int {
			if c := b.Time.Compare(a.Time); c != 0 {
				return c
			}
			return strings.Compare(b.Key, a.Key)
		})
	}
}

// List lists roots/ in b. A key there that is neither a manifest nor a pin
// is an error.
func List(ctx context.Context, b s3cache.Bucket) (*Index, error) {
	x := &Index{}
	err := b.List(ctx, Prefix, x.Add)
	if err != nil {
		return nil, fmt.Errorf("listing roots: %w", err)
	}
	x.Sort()
	return x, nil
}
