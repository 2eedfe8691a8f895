package push

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// writeNarInfo signs and writes a narinfo.
func (p *pusher) writeNarInfo(ctx context.Context, ni *narinfo.NarInfo) error {
	if k := p.opts.Key; k != nil {
		fp, err := ni.Fingerprint()
		if err != nil {
			return fmt.Errorf("signing %s: %w", ni.StorePath, err)
		}
		sig := k.Sign([]byte(fp))
		if !slices.Contains(ni.Sigs, sig) {
			ni.Sigs = append(ni.Sigs, sig)
			slices.Sort(ni.Sigs)
		}
	}
	return PutNarInfo(ctx, p.b, ni)
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
