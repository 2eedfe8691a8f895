// Package serve is an HTTP view of a bucket in the binary cache
// protocol Nix speaks (src/libstore/http-binary-cache-store.cc), safe to
// put on the internet in front of a private bucket: GET and HEAD of the
// cache's layout only (layout.InLayout: nix-cache-info, <hash>.narinfo,
// <hash>.ls, nar/…, log/…, realisations/…), streamed from the bucket,
// with Range requests, conditional requests and Cache-Control; narinfos,
// listings and logs stored with a Content-Encoding decoded (see
// s3cache.Decodes), so that every Nix reads them; optional
// HTTP basic authentication from an htpasswd file (see Users), which Nix
// sends from its netrc-file; one log line per request.
//
// A request for any other key is answered at once, without asking the
// bucket: 400 for a malformed key (control bytes, dot segments, encoded
// slashes, longer than MaxKeyLength), 404 for a key outside the layout —
// locks/, roots/ and stats/ among them, which name hosts, processes and
// history — unless Options.ServeAll is set (release pages). A bucket that
// fails is a 502 with a generic body; the details go to the log.
//
// With Options.Push it also accepts pushes (receive.go): PUTs from
// holders of a token of NARs, listings, narinfos and upstream records
// (upstream.go), each checked before it is stored; nothing is deleted and
// no narinfo replaced.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Options configure a handler made by New. The zero value serves the
// cache's layout to anyone and logs nothing.
type Options struct {
	// ServeAll serves every well-formed key of the bucket (release pages,
	// locks/, roots/, stats/), not only the binary cache's layout.
	ServeAll bool
	// Users, if not nil, requires HTTP basic authentication as one of them.
	Users *Users
	// Logger receives one INFO line per request and the details of bucket
	// errors; nil discards them.
	Logger *slog.Logger
	// Push, if not nil, accepts PUTs of the cache's layout from the
	// holders of its Token (see receiver); the token also grants reads.
	// The handler is then an io.Closer: Close it once the server has
	// stopped, to release the cache lock.
	Push *PushOptions
	// Metrics, if not nil, receives the handler's Prometheus metrics
	// (metrics.go): requests by method, kind of key and status, bytes
	// sent and received, requests in flight, and the latency of the
	// bucket's operations. Nil costs nothing.
	Metrics prometheus.Registerer
}

// MaxKeyLength is the longest key served, in bytes (S3's own limit).
const MaxKeyLength = 1024

// Cache-Control values: a NAR's key names its content, so it never
// changes; narinfos and the rest change with push, gc and rm.
const (
	cacheImmutable = "max-age=31536000, immutable"
	cacheShort     = "max-age=60"
)

// Timeouts and limits for a server of a Handler: no write timeout, since
// NARs are large and links slow.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
	// ShutdownTimeout is how long a stopping server lets the requests in
	// flight finish.
	ShutdownTimeout = 30 * time.Second
)

// Handler serves the cache's layout in b read-only to anyone, logging to
// log (nil: nowhere). It is New with only a Logger.
func Handler(b s3cache.Bucket, log *slog.Logger) http.Handler {
	return New(b, Options{Logger: log})
}

// New returns a handler serving b read-only as opts say.
func New(b s3cache.Bucket, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, opts: opts, log: opts.Logger}
	if opts.Metrics != nil {
		h.metrics = newMetrics(opts.Metrics)
		h.b = h.metrics.instrument(b)
		b = h.b
	}
	if opts.Push != nil {
		h.recv = newReceiver(b, *opts.Push, opts.Logger)
	}
	return h
}

type handler struct {
	b    s3cache.Bucket
	opts Options
	log  *slog.Logger
	recv *receiver // nil: read-only

	metrics *serveMetrics // nil: none
}

// Close releases the cache lock a handler accepting pushes may hold, and
// refuses pushes from then on.
func (h *handler) Close() error {
	if h.recv != nil {
		h.recv.lock.close()
	}
	return nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	user := ""
	var observe func(status int, sent int64)
	if h.metrics != nil {
		observe = h.metrics.begin(r)
	}
	defer func() {
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if observe != nil {
			observe(rec.status, rec.bytes)
		}
		h.log.Info("request", "method", r.Method, "key", logKey(r.URL.Path), "status", rec.status,
			"bytes", rec.bytes, "ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr, "user", user)
	}()
	w = rec
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if h.recv != nil && (!read || h.opts.Users != nil) && h.recv.opts.Token.Presented(r) {
		user = "[push token]"
		if !read {
			h.write(w, r)
			return
		}
	} else if h.recv != nil && !read {
		w.Header().Set("WWW-Authenticate", `Basic realm="nixbucket push", charset="UTF-8"`)
		http.Error(w, "unauthorized: pushing needs the push token (basic auth password or bearer)", http.StatusUnauthorized)
		return
	} else if h.opts.Users != nil {
		name, password, ok := r.BasicAuth()
		if !ok || !h.opts.Users.Authenticate(name, password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="nixbucket", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		user = name
	}
	if !read {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only binary cache: GET and HEAD only", http.StatusMethodNotAllowed)
		return
	}
	key, status := h.key(r)
	if status != 0 {
		http.Error(w, strings.ToLower(http.StatusText(status)), status)
		return
	}
	h.serve(w, r, key)
}

// logKey is the requested path as logged: without its slash, cut short.
func logKey(p string) string {
	p = strings.TrimPrefix(p, "/")
	if len(p) > 200 {
		p = strings.ToValidUTF8(p[:200], "") + "…"
	}
	return p
}

// key returns the bucket key r asks for, or the status that refuses it:
// 400 for a malformed path, 404 for a key outside what is served.
func (h *handler) key(r *http.Request) (string, int) {
	u := r.URL
	if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", http.StatusBadRequest
	}
	if esc := strings.ToLower(u.EscapedPath()); strings.Contains(esc, "%2f") || strings.Contains(esc, "%5c") {
		return "", http.StatusBadRequest // encoded / or \: not a path a cache has
	}
	key := u.Path[1:]
	if len(key) > MaxKeyLength || !utf8.ValidString(key) {
		return "", http.StatusBadRequest
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", http.StatusBadRequest
		}
	}
	for c := range strings.SplitSeq(key, "/") {
		switch c {
		case ".", "..":
			return "", http.StatusBadRequest
		case "":
			return "", http.StatusNotFound // the root, a "directory", a doubled slash
		}
	}
	if !h.opts.ServeAll && !layout.InLayout(key) {
		return "", http.StatusNotFound
	}
	return key, 0
}

// serve answers a GET or HEAD of key through http.ServeContent, which
// handles Range and the conditional headers. A plain GET opens the object
// at once (one request gets its metadata and body); a HEAD, and a GET
// that may not need the body or only part of it, stat it first and open
// it where ServeContent starts reading.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, key string) {
	ctx := r.Context()
	o := &objectReader{ctx: ctx, b: h.b}
	var err error
	if r.Method == http.MethodGet && !partial(r) {
		o.body, o.info, err = s3cache.GetWithInfo(ctx, h.b, key)
	} else {
		o.info, err = h.b.Stat(ctx, key)
		if err == nil && o.info.ContentEncoding != "" && s3cache.Decodes(key) {
			// Stored compressed (Nix's narinfo-compression, niks3): it is
			// served decoded, without Content-Encoding, as Nix's clients
			// read it; only the decoded object tells its size.
			o.body, o.info, err = s3cache.GetWithInfo(ctx, h.b, key)
		}
	}
	if err != nil {
		h.fail(w, key, err)
		return
	}
	defer o.Close()
	hd := w.Header()
	hd.Set("Content-Type", ContentType(key, o.info.ContentType))
	hd.Set("Cache-Control", h.cacheControl(key))
	hd.Set("X-Content-Type-Options", "nosniff")
	if o.info.ETag != "" {
		hd.Set("ETag", `"`+o.info.ETag+`"`)
	}
	if strings.Contains(r.Header.Get("Range"), ",") {
		// Several ranges would cost a bucket request each; a server may
		// ignore Range (RFC 9110, 14.2) and send the whole object.
		r.Header.Del("Range")
	}
	http.ServeContent(&openingWriter{ResponseWriter: w, h: h, r: r, o: o}, r, "", o.info.LastModified, o)
}

// partial reports whether r may be answered without the whole body: a
// Range or a conditional request.
func partial(r *http.Request) bool {
	for _, name := range []string{"Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"} {
		if r.Header.Get(name) != "" {
			return true
		}
	}
	return false
}

func (h *handler) cacheControl(key string) string {
	scope := "public, "
	if h.opts.Users != nil {
		scope = "private, " // not for shared caches: they would serve it to anyone
	}
	if layout.IsNar(key) {
		return scope + cacheImmutable
	}
	return scope + cacheShort
}

// fail answers a request whose object could not be opened: 404 for a
// missing key, else 502 with a generic body, the details in the log only.
func (h *handler) fail(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, s3cache.ErrNotFound) || errors.Is(err, s3cache.ErrInvalidKey) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if errors.Is(err, context.Canceled) {
		h.log.Debug("request cancelled", "key", logKey(key), "err", err) // the client left
	} else {
		h.log.Warn("bucket error", "key", logKey(key), "err", err)
	}
	http.Error(w, "bad gateway: the cache's storage did not answer", http.StatusBadGateway)
}

// errChanged is the error of a read whose object changed since it was
// stated.
var errChanged = errors.New("object changed while being served")

// objectReader is an io.ReadSeeker over an object of a bucket for
// http.ServeContent: Seek only moves the offset; the object is opened
// (with a ranged GET past offset 0) when read from, or when the response's
// status is about to be sent (see openingWriter).
type objectReader struct {
	ctx  context.Context
	b    s3cache.Bucket
	info s3cache.ObjectInfo
	off  int64         // where the next Read reads
	body io.ReadCloser // open at bodyOff, or nil
	at   int64         // body's offset
	err  error         // the open's error, for good
}

func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.info.Size
	}
	if offset < 0 {
		return 0, fmt.Errorf("seeking %s: negative offset", o.info.Key)
	}
	o.off = offset
	return offset, nil
}

// open opens the object at the current offset, unless it is open there.
func (o *objectReader) open() error {
	if o.err != nil || (o.body != nil && o.at == o.off) {
		return o.err
	}
	o.Close()
	if o.off >= o.info.Size {
		o.body, o.at = io.NopCloser(strings.NewReader("")), o.off
		return nil
	}
	rc, info, err := s3cache.GetRange(o.ctx, o.b, o.info.Key, o.off, -1)
	if err == nil && (info.Size != o.info.Size || info.ETag != o.info.ETag) {
		rc.Close()
		err = fmt.Errorf("getting %s from offset %d: %w", o.info.Key, o.off, errChanged)
	}
	if err != nil {
		o.err = err
		return err
	}
	o.body, o.at = rc, o.off
	return nil
}

func (o *objectReader) Read(p []byte) (int, error) {
	if err := o.open(); err != nil {
		return 0, err
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	o.at += int64(n)
	return n, err
}

// Close closes the open body, if any.
func (o *objectReader) Close() error {
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}

// openingWriter opens the object before a 200 or 206 is sent, so that a
// bucket that fails then still gets a 502 (or a 404, for an object
// deleted since it was stated) instead of a truncated success.
type openingWriter struct {
	http.ResponseWriter
	h      *handler
	r      *http.Request
	o      *objectReader
	failed bool
}

func (w *openingWriter) WriteHeader(code int) {
	if (code == http.StatusOK || code == http.StatusPartialContent) && w.r.Method == http.MethodGet {
		if err := w.o.open(); err != nil {
			for _, name := range []string{"Content-Range", "Content-Length", "Accept-Ranges", "ETag", "Last-Modified", "Cache-Control"} {
				w.Header().Del(name)
			}
			w.failed = true
			w.h.fail(w.ResponseWriter, w.o.info.Key, err)
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *openingWriter) Write(p []byte) (int, error) {
	if w.failed {
		return 0, errChanged
	}
	return w.ResponseWriter.Write(p)
}

// recorder notes a response's status and body length for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ContentType is the media type served for key: the type Nix gives the
// cache's files (layout.ContentType), else the stored type, else one
// guessed from the extension.
func ContentType(key, stored string) string {
	if t := layout.ContentType(key); t != "" {
		return t
	}
	if stored != "" && stored != "application/octet-stream" {
		return stored
	}
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}
