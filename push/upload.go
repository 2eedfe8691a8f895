package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/httpcache"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// Large NARs hold several part buffers each, so at most bigJobs NARs over
// bigNar bytes stream at once, in slots of their own: the Jobs slots keep
// small paths flowing beside them. The compressors' chunks are bounded
// across the process (package compression), so overlapping large NARs
// adds only their part buffers (narPartConcurrency × the part size each)
// and hides each one's first and last round trips behind the others,
// while a push's peak memory stays under 200 MiB whatever the NAR sizes.
const (
	bigNar  = 16 << 20
	bigJobs = 3
	// narPartConcurrency is the number of parts of one NAR in flight.
	narPartConcurrency = 2
)

// LargeNAR is the NAR size over which an upload holds several part
// buffers and a parallel compressor's state: Push streams one such NAR at
// a time, and callers of UploadNAR should too, to keep within a push's
// memory.
const LargeNAR = bigNar

// NarKey is the bucket key of a NAR: nar/<nix32 NarHash>.nar<ext>. Keying
// by NarHash, not FileHash, fixes the URL before compressing; identical
// content still dedups.
func NarKey(info *store.PathInfo, algo string) string {
	return layout.NarKey(nixbase32.EncodeToString(info.NarHash.Digest()), compression.Ext(algo))
}

// UploadNAR uploads the NAR of one valid store path as Push uploads NARs
// (see uploadNAR), to NarKey(info, opts.Compression), replacing any object
// there, and returns the path's narinfo: unsigned, unwritten, with info's
// signatures. Of opts it reads Compression, CompressionLevel, PartSize,
// Counters and Logger; it takes no lock. When the files on disk do not
// match info's NarHash and NarSize, it fails with an error wrapping
// nar.ErrMismatch and the upload is abandoned: what the key held before
// stays.
func UploadNAR(ctx context.Context, b s3cache.Bucket, info *store.PathInfo, opts Options) (*narinfo.NarInfo, error) {
	p, err := newPusher(b, nil, opts)
	if err != nil {
		return nil, err
	}
	return p.uploadNAR(ctx, info, nil)
}

// maxNarResends bounds how many times one NAR upload that broke off is
// sent again from the start (see uploadNAR).
const maxNarResends = 3

// uploadNAR streams one path's NAR through the hash check and the
// compressor into the bucket, and returns its narinfo (unsigned, unwritten).
// If the NAR on disk does not match the store's NarHash/NarSize, the upload
// is aborted and nothing is left in the bucket. If before is not nil, the
// NAR is compressed at once but no request of the upload is sent until
// before returns (see gatedReader); an error from it stops the upload.
//
// An upload the bucket could not resend, a stream, but that failed
// transiently (an httpcache.ResendError: a push through `serve
// --accept-push`) is made again from the start, the NAR read and
// compressed anew from the store, up to maxNarResends times within the
// bucket's retry budget, each time with a WARN line. An S3 bucket retries
// its parts itself and returns no such error.
func (p *pusher) uploadNAR(ctx context.Context, info *store.PathInfo, before func(context.Context) error) (*narinfo.NarInfo, error) {
	var first time.Time // of the first failure
	for resends := 0; ; resends++ {
		var sent narCounts
		ni, err := p.uploadNAROnce(ctx, info, before, &sent)
		var re *httpcache.ResendError
		if err == nil || !errors.As(err, &re) || ctx.Err() != nil || resends >= maxNarResends {
			return ni, err
		}
		if first.IsZero() {
			first = time.Now()
		} else if time.Since(first) >= re.RetryFor {
			return nil, err
		}
		p.counters.NarBytes.Add(-sent.nar.Load())
		p.counters.FileBytes.Add(-sent.file.Load())
		p.log.Warn(fmt.Sprintf("uploading %s again from the start (attempt %d of %d): %v", NarKey(info, p.algo), resends+2, maxNarResends+1, re))
		pause := min(re.RetryFor/10, 200*time.Millisecond<<resends)
		pause = pause/2 + rand.N(pause/2+1)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// narCounts are the bytes one upload of a NAR added to the push's
// Counters, taken back if it is made again.
type narCounts struct {
	nar, file atomic.Int64
}

// uploadNAROnce makes one upload of uploadNAR, counting what it reads and
// compresses into sent as well as the push's Counters.
func (p *pusher) uploadNAROnce(ctx context.Context, info *store.PathInfo, before func(context.Context) error, sent *narCounts) (*narinfo.NarInfo, error) {
	key := NarKey(info, p.algo)
	p.log.Debug("uploading nar", "path", info.Path, "key", key, "bytes", info.NarSize)
	pr, pw := io.Pipe()
	file := nar.NewHasher()
	done := make(chan error, 1)
	go func() {
		err := p.compressNAR(ctx, io.MultiWriter(file, pw), info, sent)
		pw.CloseWithError(err) // nil: the upload sees EOF and completes
		done <- err
	}()
	var body io.Reader = pr
	var gate *gatedReader
	if before != nil {
		gate = &gatedReader{ctx: ctx, r: pr, free: s3cache.MinPartSize - 1, open: before}
		body = gate
	}
	slack := int64(info.NarSize/64) + 1<<16
	err := p.b.Put(ctx, key, body, -1, s3cache.PutOptions{
		ContentType:  layout.ContentType(key),
		PartSize:     p.opts.PartSize,
		Concurrency:  narPartConcurrency,
		ExpectedSize: int64(info.NarSize) + slack,
	})
	pr.CloseWithError(errors.Join(err, errUploadStopped)) // unblock the producer if Put stopped early
	perr := <-done
	if gate != nil && gate.err != nil {
		return nil, gate.err // the gate's own error, as the caller gave it
	}
	if perr != nil && !errors.Is(perr, errUploadStopped) {
		return nil, fmt.Errorf("pushing %s: %w", info.Path, perr)
	}
	if err != nil {
		return nil, fmt.Errorf("uploading %s: %w", key, err)
	}
	return &narinfo.NarInfo{
		StorePath:   info.Path,
		URL:         key,
		Compression: p.algo,
		FileHash:    file.Hash(),
		FileSize:    file.Size(),
		NarHash:     info.NarHash,
		NarSize:     info.NarSize,
		References:  baseNames(info.References),
		Deriver:     storepath.Base(info.Deriver),
		Sigs:        slices.Clone(info.Signatures),
		CA:          info.CA,
	}, nil
}

var errUploadStopped = errors.New("upload stopped")

// compressNAR writes the compressed NAR of info to w, failing (before the
// compressor's end is written) if the NAR differs from the store's record.
// It counts the bytes into sent too.
func (p *pusher) compressNAR(ctx context.Context, w io.Writer, info *store.PathInfo, sent *narCounts) error {
	cw, err := compression.NewWriter(&countingWriter{w: w, n: &p.counters.FileBytes, also: &sent.file}, p.algo, compression.Options{SizeHint: int64(info.NarSize), Level: p.opts.CompressionLevel})
	if err != nil {
		return err
	}
	err = nar.VerifyPath(ctx, &countingWriter{w: cw, n: &p.counters.NarBytes, also: &sent.nar}, info.Path, info.NarHash, info.NarSize)
	if err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// countingWriter adds the bytes written through it to a counter, and to
// also.
type countingWriter struct {
	w    io.Writer
	n    *atomic.Int64
	also *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	c.also.Add(int64(n))
	return n, err
}
