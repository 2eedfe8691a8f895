package gc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

func hashOf(c string) string { return strings.Repeat(c, 32) }

// TestLogLiveness: decide keeps a log while a live narinfo names its
// derivation, a listing while its narinfo is live, a realisation while
// its outPath's narinfo is live; condemns them otherwise, and deletes
// them once condemned for the grace, unchanged; keys gc does not know
// under log/ and realisations/, and young objects, are left alone.
func TestLogLiveness(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old, long := now.Add(-48*time.Hour), now.Add(-25*time.Hour)
	live, dead, kept := hashOf("a"), hashOf("b"), hashOf("c") // kept: dead, but not deleted this run
	liveDrv, deadDrv, keptDrv := hashOf("1")+"-foo.drv", hashOf("2")+"-bar.drv", hashOf("3")+"-baz.drv"
	for _, tc := range []struct {
		name    string
		key     string
		outPath string // of a realisation, as read
		young   bool
		since   bool // condemned a grace ago
		want    string
	}{
		{"log of a live path", layout.LogKey(liveDrv), "", false, true, "keep"},
		{"log of a dead path", layout.LogKey(deadDrv), "", false, false, "condemn"},
		{"log of a dead path, condemned", layout.LogKey(deadDrv), "", false, true, "delete"},
		{"log of a dead path not deleted this run", layout.LogKey(keptDrv), "", false, true, "condemn"},
		{"log no narinfo names", layout.LogKey(hashOf("4") + "-qux.drv"), "", false, true, "delete"},
		{"log of a live .drv", layout.LogKey(live + "-drv.drv"), "", false, true, "keep"},
		{"log of a dead .drv", layout.LogKey(dead + "-drv.drv"), "", false, true, "delete"},
		{"young log of a dead path", layout.LogKey(deadDrv), "", true, false, "keep"},
		{"not a log key", "log/README", "", false, true, "keep"},
		{"log/ subdirectory", "log/x/" + deadDrv, "", false, true, "keep"},
		{"listing of a live path", layout.ListingKey(live), "", false, true, "keep"},
		{"listing of a dead path", layout.ListingKey(dead), "", false, false, "condemn"},
		{"listing of a dead path, condemned", layout.ListingKey(dead), "", false, true, "delete"},
		{"realisation of a live path", "realisations/sha256:11!out.doi", live, false, true, "keep"},
		{"realisation of a dead path", "realisations/sha256:11!out.doi", dead, false, false, "condemn"},
		{"realisation of a dead path, condemned", "realisations/sha256:11!dev.doi", dead, false, true, "delete"},
		{"realisation of an absent path, condemned", "realisations/sha256:11!out.doi", hashOf("d"), false, true, "delete"},
		{"not a realisation key", "realisations/notes.txt", "", false, true, "keep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(nil, Options{Now: func() time.Time { return now }})
			r.now = now
			r.objects = map[string]s3cache.ObjectInfo{}
			r.infos = map[string]*narinfo.NarInfo{}
			r.outPaths = map[string]string{}
			since := map[string]time.Time{}
			for h, drv := range map[string]string{live: liveDrv, dead: deadDrv, kept: keptDrv} {
				k := layout.NarInfoKey(h)
				r.infos[h] = &narinfo.NarInfo{StorePath: "/nix/store/" + h + "-x", URL: "nar/" + h + ".nar", Deriver: drv}
				r.objects[k] = s3cache.ObjectInfo{Key: k, LastModified: old}
				if h == dead {
					since[k] = long
				}
			}
			lm := old
			if tc.young {
				lm = now.Add(-time.Minute)
			}
			r.objects[tc.key] = s3cache.ObjectInfo{Key: tc.key, LastModified: lm}
			if tc.since {
				since[tc.key] = long
			}
			if tc.outPath != "" {
				r.outPaths[tc.key] = tc.outPath
			}
			del, condemned := r.decide(map[string]bool{live: true}, since)
			got := "keep"
			if slices.ContainsFunc(del, func(a Action) bool { return a.Key == tc.key }) {
				got = "delete"
			} else if _, ok := condemned[tc.key]; ok {
				got = "condemn"
			}
			if got != tc.want {
				t.Errorf("%s: %s, want %s", tc.key, got, tc.want)
			}
		})
	}
}

// TestDeriversToRead: of the narinfos known from manifests that record
// no derivers, only those whose name is a log's derivation's name, or it
// and -<output>, are read; none known from a manifest that records
// derivers (whatever the other manifests naming it).
func TestDeriversToRead(t *testing.T) {
	const old, recording = false, true
	for _, tc := range []struct {
		name      string
		logs      []string
		path      string
		manifests []bool // Derivers of the manifests naming it; none: read with a GET
		want      bool
	}{
		{"out", []string{"hello-2.12"}, "hello-2.12", []bool{old}, true},
		{"other output", []string{"hello-2.12"}, "hello-2.12-man", []bool{old}, true},
		{"two dashes", []string{"hello"}, "hello-2.12-man", []bool{old}, true},
		{"other name", []string{"hello-2.12"}, "hello-2.13", []bool{old}, false},
		{"a prefix only", []string{"hello-2"}, "hello-2.12", []bool{old}, false},
		{"read with a GET", []string{"hello-2.12"}, "hello-2.12", nil, false},
		{"no logs", nil, "hello-2.12", []bool{old}, false},
		{"manifest records derivers", []string{"hello-2.12"}, "hello-2.12", []bool{recording}, false},
		{"old manifest, then recording", []string{"hello-2.12"}, "hello-2.12", []bool{old, recording}, false},
		{"recording, then old manifest", []string{"hello-2.12"}, "hello-2.12", []bool{recording, old}, false},
		{"two old manifests", []string{"hello-2.12"}, "hello-2.12", []bool{old, old}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(nil, Options{})
			h := hashOf("a")
			sp := "/nix/store/" + h + "-" + tc.path
			key := layout.NarInfoKey(h)
			r.objects = map[string]s3cache.ObjectInfo{key: {Key: key, ETag: "0123456789abcdef0123456789abcdef"}}
			drv := hashOf("d") + "-" + tc.path + ".drv"
			for _, derivers := range tc.manifests {
				e := roots.Entry{Path: sp, NarInfo: key, NAR: "nar/x.nar", NarInfoMD5: "0123456789ABCDEF0123456789ABCDEF", References: []string{}}
				if derivers {
					e.Deriver = drv
				}
				r.manifests = append(r.manifests, &roots.Manifest{Derivers: derivers, Paths: []roots.Entry{e}})
			}
			if len(tc.manifests) == 0 { // as readNarInfos' GET leaves it
				r.infos, r.deriverUnknown = map[string]*narinfo.NarInfo{h: {StorePath: sp}}, map[string]bool{}
			} else if err := r.readNarInfos(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := drv; !slices.Contains(tc.manifests, recording) {
				want = ""
			} else if got := r.infos[h].Deriver; got != want {
				t.Errorf("Deriver %q, want %q", got, want)
			}
			if got := len(r.deriversToRead(tc.logs)) == 1; got != tc.want {
				t.Errorf("read %s for logs %v: %v, want %v", tc.path, tc.logs, got, tc.want)
			}
		})
	}
}
