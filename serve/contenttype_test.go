package serve_test

import (
	"testing"

	"github.com/nixbucket/nixbucket/serve"
)

// TestContentType checks the order of the sources of a served type: Nix's
// type for the cache's keys whatever was stored, then the stored type,
// then one by extension.
func TestContentType(t *testing.T) {
	const hash = "0123456789abcdfghijklmnpqrsvwxyz"
	for _, tc := range []struct {
		key, stored, want string
	}{
		{"nix-cache-info", "application/octet-stream", "text/x-nix-cache-info"},
		{hash + ".narinfo", "text/plain", "text/x-nix-narinfo"},
		{hash + ".ls", "", "application/json"},
		{"nar/x.nar.xz", "application/x-xz", "application/x-nix-nar"},
		{"log/" + hash + "-x.drv", "application/octet-stream", "text/plain; charset=utf-8"},
		{"realisations/x.doi", "", "application/json"},
		{"_releases/v1/index.html", "text/html; charset=utf-8", "text/html; charset=utf-8"},
		{"_releases/v1/notes.json", "application/octet-stream", "application/json"},
		{"stats/history.jsonl", "", "application/octet-stream"},
		{"other.narinfo", "", "application/octet-stream"},
	} {
		if got := serve.ContentType(tc.key, tc.stored); got != tc.want {
			t.Errorf("ContentType(%q, %q) = %q, want %q", tc.key, tc.stored, got, tc.want)
		}
	}
}
