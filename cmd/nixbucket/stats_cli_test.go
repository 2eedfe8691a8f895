package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/stats"
)

// TestStatsText checks stats' text against each real server: a row per
// kind the cache has and none for the kinds it lacks, the GETs said in
// plain words, and the note about MinIO's listing of unfinished uploads
// only when the server is MinIO (its Server header); --json keeps its
// fields.
func TestStatsText(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	f := nixtest.Sample(t, 3, "cli-stats-text")
	app := nixtest.Build(t, f, "app")[0]
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			env := creds(srv)
			if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, "--root", "main", app); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			code, stdout, stderr := runBin(t, env, "stats", "--cache", srv.URL)
			if code != 0 {
				t.Fatalf("stats: exit %d: %s", code, stderr)
			}
			_, js, _ := runBin(t, env, "stats", "--cache", srv.URL, "--json")
			var r stats.Report
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("stats --json: %v: %q", err, js)
			}
			for _, k := range stats.Kinds {
				row := "\n  " + k + " "
				if has := r.ByKind[k].Objects > 0; strings.Contains(stdout, row) != has {
					t.Errorf("the cache has %d %s objects, and the text has a row for them: %v\n%s", r.ByKind[k].Objects, k, !has, stdout)
				}
			}
			if !strings.Contains(stdout, "read narinfos that no root manifest lists") || strings.Contains(stdout, "vouches") {
				t.Errorf("the GETs are not said in plain words:\n%s", stdout)
			}
			note := strings.Contains(stdout, "MinIO")
			if isMinIO := kind == s3test.MinIO; note != isMinIO {
				t.Errorf("server %s: the MinIO note shown: %v\n%s", kind, note, stdout)
			}
			if strings.Contains(js, "MinIO") != note {
				t.Errorf("the text and --json disagree on the MinIO note:\n%s\n%s", stdout, js)
			}
			for _, field := range []string{`"total"`, `"byKind"`, `"notes"`, `"narinfoGets"`} {
				if !strings.Contains(js, field) {
					t.Errorf("stats --json has no %s: %s", field, js)
				}
			}
		})
	}
}
