//go:build bench

package bench

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// fileCache is the HTTP binary cache `nix copy --to http://…` writes to in
// the network benchmark: GET, HEAD and PUT of files under dir, as a web
// server with WebDAV-style PUT (nginx, Apache) serves a cache. It is the
// baseline's server, so it does the least a server can: no auth, no
// checks, files renamed into place.
type fileCache struct{ dir string }

func (c fileCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel := filepath.FromSlash(strings.TrimPrefix(filepath.Clean("/"+r.URL.Path), "/"))
	p := filepath.Join(c.dir, rel)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		f, err := os.Open(p)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", fi.ModTime(), f)
	case http.MethodPut:
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, err = io.Copy(tmp, r.Body)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
