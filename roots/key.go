package roots

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/layout"
)

// Prefix is the key prefix of root manifests and pins, the cache
// layout's roots/.
const Prefix = layout.RootsDir

// PinName is the last key component of a root's pin marker.
const PinName = "pinned"

// TimeFormat is the layout of a manifest's time in its key (UTC).
const TimeFormat = "20060102T150405Z"

// ErrInvalidName is returned (wrapped) for a root name that cannot be a
// key component.
var ErrInvalidName = errors.New("invalid root name")

// nameRE is what CheckName allows.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$`)

// CheckName returns an error wrapping ErrInvalidName unless name is 1–100
// letters, digits, '.', '_', '+' or '-', starting with a letter or digit.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("root name %q: use letters, digits, '.', '_', '+' and '-' (at most 100), starting with a letter or digit: %w", name, ErrInvalidName)
	}
	return nil
}

// Ref is a manifest key in the bucket, parsed.
type Ref struct {
	// Key is the object's key.
	Key string `json:"key"`
	// Name is the root's name.
	Name string `json:"name"`
	// Time is the manifest's time, from its key.
	Time time.Time `json:"time"`
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
}

// Key returns the key of a manifest of root name recorded at t.
func Key(name string, t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return Prefix + name + "/" + t.UTC().Format(TimeFormat) + "-" + hex.EncodeToString(b) + ".json"
}

// PinKey is the key of root name's pin marker.
func PinKey(name string) string { return Prefix + name + "/" + PinName }

// ParseKey parses a key under Prefix: a manifest (ref set), a pin marker
// (pinned true), or neither (an error: gc fails closed on what it cannot
// account for).
func ParseKey(key string) (ref Ref, pinned bool, err error) {
	rest, ok := strings.CutPrefix(key, Prefix)
	name, file, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || CheckName(name) != nil || strings.Contains(file, "/") {
		return Ref{}, false, fmt.Errorf("%s is not roots/NAME/…", key)
	}
	if file == PinName {
		return Ref{Key: key, Name: name}, true, nil
	}
	stamp, _, ok := strings.Cut(strings.TrimSuffix(file, ".json"), "-")
	if !ok || !strings.HasSuffix(file, ".json") {
		return Ref{}, false, fmt.Errorf("%s is not a root manifest key (roots/NAME/<time>-<id>.json)", key)
	}
	t, err := time.Parse(TimeFormat, stamp)
	if err != nil {
		return Ref{}, false, fmt.Errorf("%s is not a root manifest key: bad time %q", key, stamp)
	}
	return Ref{Key: key, Name: name, Time: t}, false, nil
}
