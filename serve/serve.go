// Package serve is a read-only HTTP view of a bucket in the binary cache
// protocol Nix speaks (src/libstore/http-binary-cache-store.cc): GET and
// HEAD of nix-cache-info, <hash>.narinfo and nar/…, streamed from the
// bucket, so Nix can substitute from a private bucket without making it
// public. Any other key of the bucket is served too (release pages, logs).
package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Handler serves the objects of b read-only. A missing key is a 404; a
// bucket error is a 502 with a one-line reason.
func Handler(b s3cache.Bucket, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{b: b, log: log}
}

type handler struct {
	b   s3cache.Bucket
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only binary cache: GET and HEAD only", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if key == "" || strings.HasSuffix(r.URL.Path, "/") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	ctx := r.Context()
	if r.Method == http.MethodHead {
		info, err := h.b.Stat(ctx, key)
		if err != nil {
			h.fail(w, key, err)
			return
		}
		h.headers(w, info)
		w.WriteHeader(http.StatusOK)
		return
	}
	rc, info, err := s3cache.GetWithInfo(ctx, h.b, key)
	if err != nil {
		h.fail(w, key, err)
		return
	}
	defer rc.Close()
	h.headers(w, info)
	w.WriteHeader(http.StatusOK)
	n, err := io.Copy(w, rc)
	if err != nil {
		h.log.Warn("serving object interrupted", "key", key, "bytes", n, "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, s3cache.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.log.Warn("bucket error", "key", key, "err", err)
	http.Error(w, fmt.Sprintf("bucket error: %v", err), http.StatusBadGateway)
}

func (h *handler) headers(w http.ResponseWriter, info s3cache.ObjectInfo) {
	hd := w.Header()
	hd.Set("Content-Type", ContentType(info.Key, info.ContentType))
	hd.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if !info.LastModified.IsZero() {
		hd.Set("Last-Modified", info.LastModified.UTC().Format(http.TimeFormat))
	}
	if info.ETag != "" {
		hd.Set("ETag", `"`+info.ETag+`"`)
	}
}

// ContentType is the media type served for key: Nix's own types for the
// cache's files, else the stored type, else one guessed from the extension.
func ContentType(key, stored string) string {
	switch {
	case key == "nix-cache-info":
		return "text/x-nix-cache-info"
	case strings.HasSuffix(key, ".narinfo"):
		return "text/x-nix-narinfo"
	case strings.HasPrefix(key, "nar/"):
		return "application/x-nix-nar"
	case stored != "" && stored != "application/octet-stream":
		return stored
	}
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Timeouts for a server of Handler: generous writes, since NARs are large.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
)
