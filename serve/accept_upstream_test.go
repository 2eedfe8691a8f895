package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// upstreamRecord returns the JSON of an upstream record of paths.
func upstreamRecord(t *testing.T, dir string, paths ...string) []byte {
	t.Helper()
	r := roots.UpstreamRecord{Version: roots.UpstreamVersion, Created: time.Now().UTC().Truncate(time.Second), StoreDir: dir}
	for _, p := range paths {
		r.Paths = append(r.Paths, roots.UpstreamPath{Path: p, Signers: []string{"cache.example.org-1"}})
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// unlocked returns the keys of b but the locks.
func unlocked(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	return slices.DeleteFunc(listing(t, b), func(k string) bool { return layout.KindOf(k) == layout.KindLock })
}

// TestAcceptUpstreamRecords PUTs upstream records to a server that
// accepts pushes: a record that parses, for the cache's store, under a
// key as push writes them, is stored (again, with the same bytes: a
// retry), never replaced, and each malformed one is refused with a 4xx
// and leaves nothing. A narinfo whose reference the cache lacks is
// refused until a record names it: one PUT through the server, or one
// another writer put straight into the bucket.
func TestAcceptUpstreamRecords(t *testing.T) {
	t.Parallel()
	key, _ := signing.GenerateSecretKey("accept-up-1")
	hs, b := acceptServer(t, key)
	dir := storepath.DefaultDir()
	upA := newFakePath(t, "up-a", ".xz", key).path
	upB := newFakePath(t, "up-b", ".xz", key).path
	good := upstreamRecord(t, dir, upA)
	goodKey := roots.UpstreamKey(time.Now())

	for _, tc := range []struct {
		name   string
		key    string
		body   []byte
		token  string
		status int
	}{
		{"no token", goodKey, good, "", http.StatusUnauthorized},
		{"bad JSON", roots.UpstreamKey(time.Now()), []byte("{"), testToken, http.StatusBadRequest},
		{"bad version", roots.UpstreamKey(time.Now()), bytes.Replace(good, []byte(`"version":1`), []byte(`"version":7`), 1), testToken, http.StatusBadRequest},
		{"not a store path", roots.UpstreamKey(time.Now()), upstreamRecord(t, dir, "/etc/passwd"), testToken, http.StatusBadRequest},
		{"other store", roots.UpstreamKey(time.Now()), upstreamRecord(t, "/other/store", "/other/store/"+storepath.Base(upA)), testToken, http.StatusConflict},
		{"too large", roots.UpstreamKey(time.Now()), bytes.Repeat([]byte(" "), 16<<20+1), testToken, http.StatusRequestEntityTooLarge},
		{"key without id", "upstream/20260101T000000Z.json", good, testToken, http.StatusForbidden},
		{"key with a bad id", "upstream/20260101T000000Z-XYZ.json", good, testToken, http.StatusForbidden},
		{"key in a subdirectory", "upstream/x/20260101T000000Z-ab.json", good, testToken, http.StatusForbidden},
		{"key not json", "upstream/20260101T000000Z-ab.txt", good, testToken, http.StatusForbidden},
		{"good", goodKey, good, testToken, http.StatusOK},
		{"good again", goodKey, good, testToken, http.StatusOK},
		{"replacing", goodKey, upstreamRecord(t, dir, upB), testToken, http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := unlocked(t, b)
			code, msg := request(t, hs.URL, http.MethodPut, tc.key, tc.token, tc.body)
			if code != tc.status {
				t.Fatalf("PUT %s: %d %q; want %d", tc.key, code, msg, tc.status)
			}
			after := unlocked(t, b)
			if tc.status != http.StatusOK && !slices.Equal(before, after) {
				t.Errorf("a refused PUT changed the bucket from %v to %v", before, after)
			}
		})
	}
	if data, err := s3cache.ReadSmall(context.Background(), b, goodKey, 1<<20); err != nil || !bytes.Equal(data, good) {
		t.Errorf("%s holds %q, %v; want the first record", goodKey, data, err)
	}

	// A narinfo referring to upA (recorded through the server) is
	// accepted; one referring to upB too once another writer's record,
	// put into the bucket behind the server's back, names it.
	for i, up := range []string{upA, upB} {
		own := newFakePath(t, "own", ".xz", key, up)
		if code, msg := request(t, hs.URL, http.MethodPut, own.narKey, testToken, own.nar); code != http.StatusOK {
			t.Fatalf("PUT NAR: %d %q", code, msg)
		}
		if i == 1 {
			code, msg := request(t, hs.URL, http.MethodPut, own.narInfoKey(), testToken, []byte(own.ni.String()))
			if code != http.StatusConflict || !strings.Contains(msg, storepath.Base(upB)) {
				t.Fatalf("PUT of a narinfo referring to a path neither present nor recorded: %d %q; want 409 naming it", code, msg)
			}
			other := upstreamRecord(t, dir, upB)
			if err := b.Put(context.Background(), roots.UpstreamKey(time.Now()), bytes.NewReader(other), int64(len(other)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if code, msg := request(t, hs.URL, http.MethodPut, own.narInfoKey(), testToken, []byte(own.ni.String())); code != http.StatusOK {
			t.Fatalf("PUT of a narinfo referring to %s, recorded upstream: %d %q", up, code, msg)
		}
	}
}
