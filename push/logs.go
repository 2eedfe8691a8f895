package push

// Build logs (Options.Logs): after the narinfos, the build log of each
// path's derivation that Nix kept locally is uploaded to log/<drv base
// name>, where `nix log --store CACHE PATH` looks for it
// (BinaryCacheStore::getBuildLogExact). Logs are not part of the closure
// invariant: a missing or failed log never fails a push.

import (
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// DefaultLogDir is Nix's log directory when NIX_LOG_DIR is not set
// (settings.nixLogDir, NIX_LOG_DIR at Nix's build time).
const DefaultLogDir = "/nix/var/log/nix"

// MaxLogSize is the largest build log uploaded, in bytes (uncompressed): a
// reader decodes a compressed log whole (s3cache.MaxDecodedSize). A larger
// log is left out with a warning.
const MaxLogSize = s3cache.MaxDecodedSize

// logJobs bounds the logs read and uploaded at once: each is held in
// memory whole.
const logJobs = 4

// LogDir returns the directory Nix keeps its logs in: NIX_LOG_DIR, else
// DefaultLogDir. Build logs are under its drvs/ directory.
func LogDir() string {
	if d := os.Getenv("NIX_LOG_DIR"); d != "" {
		return filepath.Clean(d)
	}
	return DefaultLogDir
}

// CheckLogCompression checks a log-compression value for the logs push
// writes: "" or none (plain text, as Nix by default), or the
// Content-Encodings zstd, br and gzip that every Nix decodes. xz is
// refused as for narinfo-compression (Nix 2.34 and later no longer decode
// it), and so are the methods nixbucket cannot encode.
func CheckLogCompression(c string) error {
	switch c {
	case "", "none", "zstd", "br", "gzip":
		return nil
	case "xz":
		return errors.New("logs stored with Content-Encoding xz cannot be read by Nix 2.34 and later; use zstd, br or gzip")
	}
	return fmt.Errorf("nixbucket writes logs with zstd, br or gzip, not %s", c)
}

// LocalLog returns the build log of the derivation drv (a store path or
// its base name) that Nix keeps under dir (LogDir), as
// LocalFSStore::getBuildLog finds it: drvs/<2 characters>/<rest>, then
// drvs/<base name>, each plain or .bz2 (Nix's default); the text,
// decompressed, at most MaxLogSize bytes. A derivation with no log
// returns an error wrapping os.ErrNotExist.
func LocalLog(dir, drv string) ([]byte, error) {
	base := storepath.Base(drv)
	for _, name := range logFiles(dir, base) {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		data, err := readLog(f, strings.HasSuffix(name, ".bz2"))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("no build log of %s in %s: %w", base, dir, os.ErrNotExist)
}

// logFiles are the files, in Nix's order, where the log of the derivation
// base may be under dir: drvs/<2 characters>/<rest>, then drvs/<base>,
// each plain, then .bz2. None for a name too short to be one.
func logFiles(dir, base string) []string {
	if len(base) < 3 {
		return nil
	}
	var out []string
	for _, p := range []string{
		filepath.Join(dir, "drvs", base[:2], base[2:]),
		filepath.Join(dir, "drvs", base),
	} {
		out = append(out, p, p+".bz2")
	}
	return out
}

func readLog(f io.Reader, bz bool) ([]byte, error) {
	r := f
	if bz {
		r = bzip2.NewReader(f)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxLogSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxLogSize {
		return nil, fmt.Errorf("more than %d bytes: %w", MaxLogSize, s3cache.ErrTooLarge)
	}
	return data, nil
}

// logsFor returns the derivations whose logs a push uploads, sorted: the
// derivers of the paths of the plan whose narinfo is in the cache now
// (pushed or present), not those left upstream.
func logsFor(p *pusher, pl *plan) []string {
	seen := map[string]bool{}
	var drvs []string
	for _, path := range pl.order {
		if _, up := pl.upstream[path]; up {
			continue
		}
		info := p.g.Info(path)
		if info == nil || info.Deriver == "" || !storepath.IsDerivation(info.Deriver) {
			continue
		}
		d := storepath.Base(info.Deriver)
		if !seen[d] {
			seen[d] = true
			drvs = append(drvs, d)
		}
	}
	slices.Sort(drvs)
	return drvs
}

// pushLogs uploads the local build logs of the plan's derivations that
// the cache lacks, and counts them in res. A log that cannot be read or
// uploaded is a warning (counted in LogsFailed); only a cancelled ctx is
// an error.
func (p *pusher) pushLogs(ctx context.Context, pl *plan, res *Result) error {
	dir := p.opts.LogDir
	if dir == "" {
		dir = LogDir()
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(logJobs)
	for _, drv := range logsFor(p, pl) {
		g.Go(func() error {
			n, present, err := p.pushLog(gctx, dir, drv)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.LogsFailed++
				p.log.Warn("build log not uploaded", "drv", drv, "err", err)
			case present:
				res.LogsPresent++
			case n > 0:
				res.Logs++
				res.LogBytes += uint64(n)
			}
			return nil
		})
	}
	return g.Wait()
}

// pushLog uploads the local log of drv unless the cache has it, and
// returns the bytes uploaded (0 when there is no local log) and whether
// the cache had the log already.
func (p *pusher) pushLog(ctx context.Context, dir, drv string) (int, bool, error) {
	if !hasLocalLog(dir, drv) {
		p.log.Debug("no local build log", "drv", drv)
		return 0, false, nil
	}
	key := layout.LogKey(drv)
	if _, err := p.b.Stat(ctx, key); err == nil {
		return 0, true, nil
	} else if !errors.Is(err, s3cache.ErrNotFound) {
		return 0, false, err
	}
	data, err := LocalLog(dir, drv)
	if err != nil {
		return 0, false, err
	}
	opts := s3cache.PutOptions{ContentType: layout.ContentType(key)}
	if c := p.opts.LogCompression; c != "" && c != "none" {
		if data, err = s3cache.Encode(c, data); err != nil {
			return 0, false, fmt.Errorf("compressing %s: %w", key, err)
		}
		opts.ContentEncoding = c
	}
	if err := p.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return 0, false, err
	}
	p.log.Debug("build log uploaded", "key", key, "bytes", len(data))
	return len(data), false, nil
}

// hasLocalLog reports, from the file names only, whether Nix kept a log
// of drv under dir, so that the cache is asked only about those.
func hasLocalLog(dir, drv string) bool {
	for _, name := range logFiles(dir, drv) {
		if _, err := os.Stat(name); err == nil {
			return true
		}
	}
	return false
}
