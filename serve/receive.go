package serve

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// PushOptions make a handler accept the writes of `nix copy --to
// http://…` and `nixbucket push --cache http://…` (see receiver). A
// token holder can write NARs, listings, narinfos its trusted keys signed
// and upstream records, and can delete nothing. An upstream record lets
// them declare any path "upstream", and so write a narinfo that refers to
// a path the cache does not hold: verify reports such a reference as left
// to upstream; no narinfo's own NAR can go missing (upstream.go).
type PushOptions struct {
	// Token authenticates the writes; required.
	Token *Token
	// TrustedKeys are the keys one of which must have signed every
	// narinfo written; required.
	TrustedKeys signing.PublicKeys
	// Lock tunes the shared cache lock the writes hold.
	Lock lock.Options
	// LockIdle is how long the lock is kept after the last write;
	// default DefaultLockIdle.
	LockIdle time.Duration
	// LockMaxHold is how long one lock takes new writes; after it they
	// take a new one, which waits for a gc that waits for the cache;
	// default DefaultLockMaxHold.
	LockMaxHold time.Duration
}

// receiver stores the writes of a pusher, checked: PUT of nar/<hash>.nar…
// (streamed to the bucket, hashed on the way), <hash>.ls (stored as is:
// harmless without a narinfo), nix-cache-info (only when the bucket has
// none, or with the same StoreDir, which is left alone) and <hash>.narinfo
// (stored only once it parses, carries a valid signature by a trusted key,
// names a NAR that is in the bucket with the FileHash and FileSize it
// says, and every path it refers to is in the cache or named by an
// upstream record) and upstream/<time>-<id>.json (an upstream record:
// stored once it parses, never replacing one; see upstream.go, which
// also says what it lets a token holder do). Every write holds the shared
// cache lock (pushLock); a narinfo checks it before it is stored. Nothing
// else is written, and nothing is ever deleted.
type receiver struct {
	b    s3cache.Bucket
	opts PushOptions
	log  *slog.Logger
	lock *pushLock
	nars *narRecords
	keys keyedMutex // one upload of a NAR (or upstream record) key at a time

	upstream upstreamRecords // the cache's upstream records, as far as known

	dirMu sync.Mutex
	dir   string // the cache's StoreDir, once read
}

func newReceiver(b s3cache.Bucket, opts PushOptions, log *slog.Logger) *receiver {
	lopts := opts.Lock
	if lopts.Command == "" {
		lopts.Command = "serve --accept-push"
	}
	if lopts.Logger == nil {
		lopts.Logger = log
	}
	return &receiver{b: b, opts: opts, log: log, lock: newPushLock(b, lopts, opts.LockIdle, opts.LockMaxHold, log), nars: newNarRecords(maxNarRecords)}
}

// refusal is a write refused: its status and a one-line reason for the
// client (and the log).
type refusal struct {
	status int
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, format string, args ...any) error {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...)}
}

// put stores the body of r under key, checked as its kind requires.
func (rc *receiver) put(w http.ResponseWriter, r *http.Request, key string) {
	err := rc.putKey(r.Context(), r, key)
	var ref *refusal
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "stored\n")
	case errors.As(err, &ref):
		rc.log.Info("push refused", "key", logKey(key), "status", ref.status, "reason", ref.msg)
		http.Error(w, ref.msg, ref.status)
	case errors.Is(err, context.Canceled):
		rc.log.Debug("push cancelled", "key", logKey(key), "err", err)
		http.Error(w, "cancelled", http.StatusBadRequest)
	case errors.Is(err, errServerClosing):
		http.Error(w, "the server is shutting down; push again", http.StatusServiceUnavailable)
	case errors.Is(err, lock.ErrLocked), errors.Is(err, lock.ErrLost):
		rc.log.Warn("push refused: no cache lock", "key", logKey(key), "err", err)
		w.Header().Set("Retry-After", "60")
		http.Error(w, "the cache is locked (a gc is running); push again later", http.StatusServiceUnavailable)
	default:
		rc.log.Warn("bucket error", "key", logKey(key), "err", err)
		http.Error(w, "bad gateway: the cache's storage did not answer", http.StatusBadGateway)
	}
}

func (rc *receiver) putKey(ctx context.Context, r *http.Request, key string) error {
	kind := layout.KindOf(key)
	switch kind {
	case layout.KindCacheInfo, layout.KindNarInfo, layout.KindListing, layout.KindNAR:
	case layout.KindUpstream:
		if !isUpstreamKey(key) {
			return refuse(http.StatusForbidden, "%s is not an upstream record key: want upstream/<time>-<hex id>.json", logKey(key))
		}
	default:
		return refuse(http.StatusForbidden, "pushes write nar/, *.narinfo, *.ls, nix-cache-info and upstream/ records only, not %s", logKey(key))
	}
	if kind == layout.KindNAR {
		if _, _, ok := narName(key); !ok {
			return refuse(http.StatusForbidden, "%s is not a NAR key: want nar/<52 nix32 characters>.nar[.xz|.zst|…]", logKey(key))
		}
	}
	enc := r.Header.Get("Content-Encoding")
	if enc != "" && enc != "identity" && kind != layout.KindListing {
		return refuse(http.StatusUnsupportedMediaType, "%s: Content-Encoding %q is not accepted; push without narinfo-compression", logKey(key), enc)
	}
	l, done, err := rc.lock.hold(ctx)
	if err != nil {
		return err
	}
	defer done()
	switch kind {
	case layout.KindCacheInfo:
		return rc.putCacheInfo(ctx, r.Body)
	case layout.KindNarInfo:
		err := rc.putNarInfo(ctx, l, key, r.Body)
		if errors.Is(err, lock.ErrLost) {
			rc.lock.lost(l)
		}
		return err
	case layout.KindListing:
		return rc.putListing(ctx, key, r.Body, enc)
	case layout.KindUpstream:
		return rc.putUpstream(ctx, key, r.Body)
	default:
		return rc.putNAR(ctx, key, r.Body, r.ContentLength)
	}
}

// narName returns the nix32 hash a NAR key names and its compression
// extension ("" for none), and whether key is nar/<52 nix32>.nar<ext>
// with one of Nix's compression extensions.
func narName(key string) (hash, ext string, ok bool) {
	name, ok := strings.CutPrefix(key, layout.NarDir)
	if !ok {
		return "", "", false
	}
	hash, rest, ok := strings.Cut(name, ".nar")
	if !ok || len(hash) != nixbase32.EncodedLen(sha256.Size) || !isNix32(hash) {
		return "", "", false
	}
	switch rest {
	case "", ".xz", ".zst", ".bz2", ".br", ".gz", ".lz4", ".lzip":
		return hash, rest, true
	}
	return "", "", false
}

func isNix32(s string) bool {
	for _, c := range []byte(s) {
		if !strings.ContainsRune(layout.HashAlphabet, rune(c)) {
			return false
		}
	}
	return true
}

// hashingReader hashes and counts what is read through it, and notes the
// reader's own errors (the client's), to tell them from the bucket's.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	err  error // the client's read error, if any
	want string
	// want, if set, is the nix32 SHA-256 the bytes must have: at EOF a
	// mismatch is returned instead, so that the upload is abandoned.
	mismatch bool
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	if err == io.EOF && hr.want != "" && nixbase32.EncodeToString(hr.h.Sum(nil)) != hr.want {
		hr.mismatch = true
		return n, errNarMismatch
	}
	if err != nil && err != io.EOF {
		hr.err = err
	}
	return n, err
}

// errNarMismatch abandons the upload of a NAR whose bytes do not have the
// hash its key names.
var errNarMismatch = errors.New("the NAR's bytes do not have the hash its key names")

// write answers a request of a token holder other than GET and HEAD:
// PUT of a key of the cache's layout or of an upstream record, stored as
// receiver says; any other method (DELETE among them) is refused with
// 405, any other key with 4xx.
func (h *handler) write(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "pushes PUT; nothing is deleted through this server", http.StatusMethodNotAllowed)
		return
	}
	key, status := h.key(r)
	if status == http.StatusNotFound {
		// Outside what is served: an upstream record is the only such key
		// pushes write (key's 404 comes after its checks of the path).
		if k := strings.TrimPrefix(r.URL.Path, "/"); isUpstreamKey(k) {
			key, status = k, 0
		} else {
			status = http.StatusForbidden
		}
	}
	if status != 0 {
		http.Error(w, strings.ToLower(http.StatusText(status)), status)
		return
	}
	h.recv.put(w, r, key)
}
