package push

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"path"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixbucket/nixbucket/gc/roots"
)

// RootOptions name the root manifest a push records.
type RootOptions struct {
	// Name is the root's name (roots.CheckName).
	Name string
	// TopLevel are the paths the push was asked for.
	TopLevel []string
	// Now, if set, is the manifest's time; default time.Now. Tests use it
	// to simulate weeks.
	Now func() time.Time
}

// recordRoot writes the manifest of the pushed closure.
func (p *pusher) recordRoot(ctx context.Context, ro *RootOptions) (string, error) {
	now := time.Now
	if ro.Now != nil {
		now = ro.Now
	}
	m := &roots.Manifest{Name: ro.Name, Created: now(), StoreDir: p.storeDir, TopLevel: ro.TopLevel}
	for _, path := range p.g.Paths() {
		info := p.g.Info(path)
		e := roots.Entry{
			Path:       path,
			NarInfo:    NarInfoKey(path),
			NarHash:    "sha256:" + nixbase32.EncodeToString(info.NarHash.Digest()),
			NarSize:    info.NarSize,
			References: baseNames(info.References),
		}
		if ni := p.written[path]; ni != nil {
			sum := md5.Sum([]byte(ni.String())) // the text writeNarInfo wrote
			e.NAR, e.FileSize, e.NarInfoMD5 = ni.URL, ni.FileSize, hex.EncodeToString(sum[:])
		}
		m.Paths = append(m.Paths, e)
	}
	if m.StoreDir == "" && len(ro.TopLevel) > 0 {
		m.StoreDir = path.Dir(ro.TopLevel[0])
	}
	key, err := roots.Write(ctx, p.b, m)
	if err != nil {
		return "", fmt.Errorf("recording root %s: %w", ro.Name, err)
	}
	p.log.Debug("recorded root", "key", key, "paths", len(m.Paths))
	return key, nil
}
