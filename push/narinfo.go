package push

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// writeNarInfo signs and writes a narinfo.
func (p *pusher) writeNarInfo(ctx context.Context, ni *narinfo.NarInfo) error {
	if err := Sign(ni, p.opts.Keys); err != nil {
		return err
	}
	return PutNarInfo(ctx, p.b, ni)
}

// Sign adds one signature by each of keys to ni, replacing any other
// signature by a key of the same name (a narinfo carries one signature per
// key name), and sorts its signatures.
func Sign(ni *narinfo.NarInfo, keys []*signing.SecretKey) error {
	if len(keys) == 0 {
		return nil
	}
	fp, err := ni.Fingerprint()
	if err != nil {
		return fmt.Errorf("signing %s: %w", ni.StorePath, err)
	}
	for _, k := range keys {
		ni.Sigs = slices.DeleteFunc(ni.Sigs, func(s string) bool {
			name, _, _ := strings.Cut(s, ":")
			return name == k.Name()
		})
		ni.Sigs = append(ni.Sigs, k.Sign([]byte(fp)))
	}
	slices.Sort(ni.Sigs)
	return nil
}

// PutNarInfo writes ni, as it is, at layout.NarInfoKeyOf(ni.StorePath).
func PutNarInfo(ctx context.Context, b s3cache.Bucket, ni *narinfo.NarInfo) error {
	text := ni.String()
	key := layout.NarInfoKeyOf(ni.StorePath)
	if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{ContentType: layout.ContentType(key)}); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = storepath.Base(p)
	}
	return out
}
