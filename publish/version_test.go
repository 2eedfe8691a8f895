package publish_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/publish"
)

func TestClassify(t *testing.T) {
	commit := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		v    string
		want publish.Class
	}{
		{"v0.9.0", publish.Stable},
		{"v0.10.0", publish.Stable},
		{"v1.2.3.4", publish.Stable},
		{"v0.7.2.1", publish.Stable},
		{"v10.20.30", publish.Stable},
		{"v007.0.0", publish.Stable},
		{"v1x2x3", publish.Extra},     // the seed's regex let any character stand for a dot
		{"v1.2x3", publish.Extra},     // idem
		{"v0.8.0-rc1", publish.Extra}, // pre-releases are extra
		{"v0.7.2-k2v", publish.Extra},
		{"convert_db", publish.Extra},
		{"v1.2", publish.Extra},
		{"v1.2.3.4.5", publish.Extra},
		{"1.2.3", publish.Extra},
		{"V1.2.3", publish.Extra},
		{"v1..3", publish.Extra},
		{"v1.2.3.", publish.Extra},
		{"v-1.2.3", publish.Extra},
		{"v１.2.3", publish.Extra}, // a full-width digit is not a number here
		{"", publish.Extra},
		{"<img src=x onerror=alert(1)>", publish.Extra},
		{commit, publish.Development},
		{strings.ToUpper(commit), publish.Extra}, // commits are lower-case hex
		{commit[:39], publish.Extra},
		{commit + "0", publish.Extra},
		{"g123456789abcdef0123456789abcdef01234567", publish.Extra},
	} {
		if got := publish.Classify(tc.v); got != tc.want {
			t.Errorf("Classify(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestCompareStable(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"v0.10.0", "v0.9.0", 1},
		{"v0.9.0", "v0.10.0", -1},
		{"v1.0.0", "v0.99.99", 1},
		{"v1.2.3.4", "v1.2.3", 1},
		{"v1.2.3", "v1.2.3.0", -1},
		{"v1.2.10", "v1.2.9.9", 1},
		{"v01.2.3", "v1.2.3", 0},
		{"v99999999999999999999999.0.0", "v99999999999999999999998.0.0", 1}, // beyond uint64
		{"v2.0.0", "v2.0.0", 0},
	} {
		if got := publish.CompareStable(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareStable(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSortVersions(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC) }
	commit1 := "1111111111111111111111111111111111111111"
	commit2 := "2222222222222222222222222222222222222222"
	vs := []publish.Dated{
		{"v0.9.0", day(9)},
		{commit1, day(2)},
		{"convert_db", day(1)},
		{"v0.10.0", day(1)},
		{"v1x2x3", day(5)},
		{"v1.2.3.4", day(3)},
		{commit2, day(7)},
		{"v0.8.0-rc1", day(4)},
		{"v1.2.3", day(20)},
	}
	publish.SortVersions(vs)
	var got []string
	for _, v := range vs {
		got = append(got, v.Version)
	}
	want := []string{
		"v1.2.3.4", "v1.2.3", "v0.10.0", "v0.9.0", // stable by number, not by date or string
		"v1x2x3", "v0.8.0-rc1", "convert_db", // extra by date, newest first
		commit2, commit1, // development by date, newest first
	}
	if !slices.Equal(got, want) {
		t.Errorf("SortVersions:\n got %q\nwant %q", got, want)
	}
}

// FuzzClassify checks Classify against an independent definition and
// CompareStable's ordering laws.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"v0.9.0", "v0.10.0", "v1.2.3.4", "v1x2x3", "v0.8.0-rc1", "convert_db",
		"0123456789abcdef0123456789abcdef01234567", "", "v", "v1.2.3.", "v00.0.0.0", "<img src=x>"} {
		f.Add(s, "v1.2.3")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c := publish.Classify(a)
		if (c == publish.Stable) != isStable(a) {
			t.Fatalf("Classify(%q) = %s, independent check says stable=%v", a, c, isStable(a))
		}
		if (c == publish.Development) != (len(a) == 40 && strings.Trim(a, "0123456789abcdef") == "") {
			t.Fatalf("Classify(%q) = %s", a, c)
		}
		if c == publish.Stable && publish.Classify(b) == publish.Stable {
			ab, ba := publish.CompareStable(a, b), publish.CompareStable(b, a)
			if ab != -ba {
				t.Fatalf("CompareStable not antisymmetric on %q, %q: %d, %d", a, b, ab, ba)
			}
			if publish.CompareStable(a, a) != 0 {
				t.Fatalf("CompareStable(%q, itself) != 0", a)
			}
		}
	})
}

// isStable is the specification written differently: v, then 3 or 4
// non-empty runs of ASCII digits joined by literal dots.
func isStable(s string) bool {
	if len(s) < 1 || s[0] != 'v' {
		return false
	}
	n, digits := 1, 0
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && digits > 0:
			n, digits = n+1, 0
		default:
			return false
		}
	}
	return digits > 0 && (n == 3 || n == 4)
}

func TestVersionFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"drone tag", map[string]string{"DRONE_TAG": "v1.0.0", "DRONE_COMMIT": "abc"}, "v1.0.0"},
		{"drone commit", map[string]string{"DRONE_COMMIT": "abc"}, "abc"},
		{"woodpecker tag", map[string]string{"CI_COMMIT_TAG": "v2.0.0", "CI_COMMIT_SHA": "def"}, "v2.0.0"},
		{"woodpecker/gitlab commit", map[string]string{"CI_COMMIT_SHA": "def"}, "def"},
		{"github tag", map[string]string{"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v3.0.0", "GITHUB_SHA": "123"}, "v3.0.0"},
		{"github branch", map[string]string{"GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main", "GITHUB_SHA": "123"}, "123"},
		{"github tag type without a name", map[string]string{"GITHUB_REF_TYPE": "tag", "GITHUB_SHA": "123"}, "123"},
		{"none", map[string]string{}, ""},
		// Mixed environments: every tag variable beats every commit variable.
		{"drone commit, woodpecker tag", map[string]string{"DRONE_COMMIT": "abc", "CI_COMMIT_TAG": "v2.0.0"}, "v2.0.0"},
		{"drone commit, woodpecker tag and sha", map[string]string{"DRONE_COMMIT": "abc", "CI_COMMIT_TAG": "v2.0.0", "CI_COMMIT_SHA": "def"}, "v2.0.0"},
		{"github sha, drone tag", map[string]string{"GITHUB_SHA": "123", "DRONE_TAG": "v1.0.0"}, "v1.0.0"},
		{"github tag, drone commit", map[string]string{"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v3.0.0", "DRONE_COMMIT": "abc"}, "v3.0.0"},
		{"github branch name, drone tag", map[string]string{"GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main", "DRONE_TAG": "v1.0.0"}, "v1.0.0"},
		{"two tags: drone first", map[string]string{"DRONE_TAG": "v1.0.0", "CI_COMMIT_TAG": "v2.0.0"}, "v1.0.0"},
		{"two commits: drone first", map[string]string{"CI_COMMIT_SHA": "def", "DRONE_COMMIT": "abc", "GITHUB_SHA": "123"}, "abc"},
		// Blank variables count as unset.
		{"blank drone tag", map[string]string{"DRONE_TAG": "  ", "DRONE_COMMIT": "abc"}, "abc"},
		{"blank woodpecker tag", map[string]string{"CI_COMMIT_TAG": "\t\n", "CI_COMMIT_SHA": "def"}, "def"},
		{"blank github tag name", map[string]string{"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": " ", "GITHUB_SHA": "123"}, "123"},
		{"only blanks", map[string]string{"DRONE_TAG": " ", "DRONE_COMMIT": "\n", "CI_COMMIT_TAG": "\t", "CI_COMMIT_SHA": " ", "GITHUB_SHA": "  "}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := publish.VersionFromEnv(func(k string) string { return tc.env[k] })
			if got != tc.want {
				t.Errorf("VersionFromEnv = %q, want %q", got, tc.want)
			}
		})
	}
}
