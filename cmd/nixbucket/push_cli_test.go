package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// pushJSON is what push --json prints, decoded field by field so that a
// missing field shows.
type pushJSON map[string]any

func (p pushJSON) num(t *testing.T, field string) float64 {
	t.Helper()
	v, ok := p[field].(float64)
	if !ok {
		t.Fatalf("push --json: field %q is %v (%T), want a number; got %v", field, p[field], p[field], p)
	}
	return v
}

func decodePush(t *testing.T, stdout string) pushJSON {
	t.Helper()
	var p pushJSON
	if err := json.Unmarshal([]byte(stdout), &p); err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("push --json printed %q (%v), want one JSON line", stdout, err)
	}
	for _, f := range []string{"paths", "pushed", "skipped", "narBytes", "fileBytes", "seconds"} {
		p.num(t, f)
	}
	return p
}

// bucketKeys returns the keys of b by kind: narinfos (by hash part), NARs
// (with their sizes) and the others.
func bucketKeys(t *testing.T, b s3cache.Bucket) (narinfos map[string]bool, nars map[string]int64, other []string) {
	t.Helper()
	narinfos, nars = map[string]bool{}, map[string]int64{}
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		switch {
		case strings.HasSuffix(o.Key, ".narinfo"):
			narinfos[strings.TrimSuffix(o.Key, ".narinfo")] = true
		case strings.HasPrefix(o.Key, "nar/"):
			nars[o.Key] = o.Size
		default:
			other = append(other, o.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return narinfos, nars, other
}

func hashSet(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		m[storepath.HashPart(p)] = true
	}
	return m
}

// TestPushCLIFlags runs push's flags against a real S3 server, with Nix
// as the oracle of closures and sizes: --dry-run, --json, --to, --stdin,
// --no-recursive, progress lines, and URL parameters.
func TestPushCLIFlags(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 10, "cli-flags")
	built := nixtest.Build(t, f, "app", "all", "blob")
	app, all, blob := built[0], built[1], built[2]
	appClosure := nixtest.Lines(t, "nix-store", "-qR", app)
	allClosure := nixtest.Lines(t, "nix-store", "-qR", all)
	key, err := signing.GenerateSecretKey("cli-flags-1")
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	fresh := func(t *testing.T) (string, s3cache.Bucket) {
		t.Helper()
		name := srv.NewBucket(t)
		return srv.StoreURL(name), srv.Open(t, name)
	}
	infos := nixtest.PathInfos(t, append(slices.Clone(allClosure), blob)...)
	narSize := func(paths []string) (n uint64) {
		for _, p := range paths {
			n += infos[p].NarSize
		}
		return n
	}

	t.Run("dry-run", func(t *testing.T) {
		url, b := fresh(t)
		code, stdout, stderr := runBin(t, env, "push", "--cache", url, "--dry-run", app)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		listed := lines[:len(lines)-1]
		slices.Sort(listed)
		want := slices.Sorted(slices.Values(appClosure))
		if !slices.Equal(listed, want) {
			t.Errorf("--dry-run listed\n%v\nwant the closure\n%v", listed, want)
		}
		summary := fmt.Sprintf("would push %d of %d paths (%s of NAR); 0 already in the cache", len(want), len(want), humanize.IBytes(narSize(want)))
		if lines[len(lines)-1] != summary {
			t.Errorf("--dry-run summary %q, want %q", lines[len(lines)-1], summary)
		}
		code, stdout, stderr = runBin(t, env, "push", "--cache", url, "--dry-run", "--json", app)
		if code != 0 {
			t.Fatalf("--dry-run --json: exit %d: %s", code, stderr)
		}
		p := decodePush(t, stdout)
		if missing, _ := p["missing"].([]any); p.num(t, "pushed") != float64(len(want)) || p.num(t, "fileBytes") != 0 || len(missing) != len(want) {
			t.Errorf("--dry-run --json: %v", p)
		}
		if n, nars, other := bucketKeys(t, b); len(n)+len(nars)+len(other) != 0 {
			t.Errorf("--dry-run wrote to the bucket: %v %v %v", n, nars, other)
		}
	})

	t.Run("json and --to", func(t *testing.T) {
		url, b := fresh(t)
		code, stdout, stderr := runBin(t, env, "push", "--to", url, "--json", app)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		p := decodePush(t, stdout)
		narinfos, nars, _ := bucketKeys(t, b)
		var fileBytes int64
		for _, n := range nars {
			fileBytes += n
		}
		n := float64(len(appClosure))
		if p.num(t, "paths") != n || p.num(t, "pushed") != n || p.num(t, "skipped") != 0 ||
			p.num(t, "narBytes") != float64(narSize(appClosure)) || p.num(t, "fileBytes") != float64(fileBytes) || p.num(t, "seconds") <= 0 {
			t.Errorf("push --json: %v; want %v paths, all pushed, narBytes %d (nix path-info), fileBytes %d (the bucket's NARs)", p, n, narSize(appClosure), fileBytes)
		}
		if len(p) != 6 {
			t.Errorf("push --json printed fields %v, want exactly paths, pushed, skipped, narBytes, fileBytes, seconds", p)
		}
		if !maps(narinfos, hashSet(appClosure)) || len(nars) != len(appClosure) {
			t.Errorf("the bucket has %d narinfos and %d NARs, want one each for the %d paths", len(narinfos), len(nars), len(appClosure))
		}

		// A superset: what is there is skipped.
		code, stdout, stderr = runBin(t, env, "push", "--to", url, "--json", all)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		p = decodePush(t, stdout)
		rest := slices.DeleteFunc(slices.Clone(allClosure), func(s string) bool { return slices.Contains(appClosure, s) })
		if p.num(t, "paths") != float64(len(allClosure)) || p.num(t, "pushed") != float64(len(rest)) || p.num(t, "skipped") != n ||
			p.num(t, "narBytes") != float64(narSize(rest)) || p.num(t, "fileBytes") <= 0 {
			t.Errorf("second push --json: %v; want %d paths, %d pushed, %v skipped, narBytes %d", p, len(allClosure), len(rest), n, narSize(rest))
		}
		code, stdout, _ = runBin(t, env, "push", "--to", url, "--json", all)
		if p = decodePush(t, stdout); code != 0 || p.num(t, "pushed") != 0 || p.num(t, "skipped") != float64(len(allClosure)) ||
			p.num(t, "narBytes") != 0 || p.num(t, "fileBytes") != 0 {
			t.Errorf("third push --json: exit %d, %v; want everything skipped", code, p)
		}
	})

	t.Run("stdin and no-recursive", func(t *testing.T) {
		url, b := fresh(t)
		// The closure of app but app, as nix-store -qR lists it.
		deps := slices.DeleteFunc(slices.Clone(appClosure), func(s string) bool { return s == app })
		code, _, stderr := runIn(t, env, "", "push", "--cache", url, "--no-recursive", app)
		if code != exitFailure {
			t.Errorf("--no-recursive with references not in the cache: exit %d, want %d", code, exitFailure)
		}
		oneErrorLine(t, stderr)
		if !strings.Contains(stderr, "drop --no-recursive") || !slices.ContainsFunc(deps, func(d string) bool { return strings.Contains(stderr, d) }) {
			t.Errorf("error %q does not name a missing reference and say to drop --no-recursive", stderr)
		}
		if narinfos, nars, _ := bucketKeys(t, b); len(narinfos)+len(nars) != 0 {
			t.Errorf("the failed push wrote %d narinfos and %d NARs", len(narinfos), len(nars))
		}

		code, stdout, stderr := runIn(t, env, strings.Join(deps, "\n")+"\n\n", "push", "--cache", url, "--no-recursive", "--stdin", "--json")
		if code != 0 {
			t.Fatalf("--stdin: exit %d: %s", code, stderr)
		}
		if p := decodePush(t, stdout); p.num(t, "paths") != float64(len(deps)) || p.num(t, "pushed") != float64(len(deps)) {
			t.Errorf("--stdin --no-recursive of %d paths: %v", len(deps), p)
		}
		if narinfos, _, _ := bucketKeys(t, b); !maps(narinfos, hashSet(deps)) {
			t.Errorf("after --stdin, the bucket has narinfos %v, want those of %v", narinfos, deps)
		}
		// Now the references are there: app alone.
		code, stdout, stderr = runIn(t, env, "", "push", "--cache", url, "--no-recursive", "--json", app)
		if p := decodePush(t, stdout); code != 0 || p.num(t, "paths") != 1 || p.num(t, "pushed") != 1 {
			t.Errorf("--no-recursive with the references in the cache: exit %d, %v (stderr %q)", code, p, stderr)
		}
		// --stdin and arguments together; the closure of what is read.
		code, stdout, stderr = runIn(t, env, all+"\n", "push", "--cache", url, "--stdin", "--json", "--compression", "zstd", blob)
		if p := decodePush(t, stdout); code != 0 || p.num(t, "paths") != float64(len(allClosure)+1) || p.num(t, "skipped") != float64(len(appClosure)) {
			t.Errorf("--stdin with an argument: exit %d, %v (stderr %q); want the closures of both", code, p, stderr)
		}
		code, _, stderr = runIn(t, env, "", "push", "--cache", url, "--no-recursive", "--include-outputs", app)
		if code != exitUsage || !strings.Contains(stderr, "--include-outputs") {
			t.Errorf("--no-recursive --include-outputs: exit %d, %q; want a usage error", code, stderr)
		}
		oneErrorLine(t, stderr)
	})

	t.Run("progress", func(t *testing.T) {
		url, _ := fresh(t)
		// stderr is a pipe here, not a terminal: plain lines, no bar, no
		// log records.
		code, stdout, stderr := runBin(t, env, "push", "--cache", url, "--compression", "zstd", "--progress-interval", "20ms", blob)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		total := humanize.IBytes(infos[blob].NarSize)
		start := "pushing 1 path, " + total + " of NAR"
		line := regexp.MustCompile(`^pushed ([01])/1 paths, ([0-9.]+ [KMG]?i?B) of ` + regexp.QuoteMeta(total) + `$`)
		var progress []string
		for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if l == start {
				continue
			}
			if !line.MatchString(l) {
				t.Errorf("stderr line %q is neither %q nor matches %s", l, start, line)
			}
			progress = append(progress, l)
		}
		if !strings.HasPrefix(stderr, start+"\n") {
			t.Errorf("stderr does not start with %q: %q", start, stderr)
		}
		// The last line is the end: every path counted, every byte.
		if last := "pushed 1/1 paths, " + total + " of " + total; len(progress) == 0 || progress[len(progress)-1] != last {
			t.Errorf("the last progress line is not %q: %q", last, stderr)
		}
		if strings.ContainsAny(stderr, "\x1b\r") || strings.Contains(stderr, "msg=") {
			t.Errorf("progress off a terminal has escapes, carriage returns or log records: %q", stderr)
		}
		t.Logf("%d progress lines, the first: %s", len(progress), progress[0])
		if !strings.HasPrefix(stdout, "pushed 1 of 1 paths") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("stdout %q, want only the summary", stdout)
		}
		if _, _, stderr := runBin(t, env, "push", "--cache", url, "--json", "--progress-interval", "20ms", app); stderr != "" {
			t.Errorf("push --json printed progress: %q", stderr)
		}
	})

	t.Run("progress bar on a terminal", func(t *testing.T) {
		// stderr is a terminal (script(1) runs the push in a pty); the NAR
		// upload stalls for a second at a proxy, so the bar shows.
		name := srv.NewBucket(t)
		isNAR := func(r *http.Request) bool { return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/nar/") }
		proxy := s3test.NewFaultProxy(t, srv.Endpoint, s3test.Rule{Match: isNAR, Fault: s3test.StallBody, Times: 1, Delay: time.Second})
		url := "s3://" + name + "?endpoint=" + proxy.URL + "&region=" + s3test.Region
		var line []string
		for _, a := range []string{cliBin, "push", "--cache", url, "--compression", "zstd", blob} {
			line = append(line, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd := exec.Command("script", "-qefc", strings.Join(line, " "), "/dev/null")
		cmd.Env = cliEnv(t, append([]string{"TERM=xterm"}, env...))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("script(1) running push in a terminal: %v: %q", err, out)
		}
		text := string(out)
		if !strings.Contains(text, "pushing 0/1 paths") || !strings.Contains(text, "\r") {
			t.Errorf("no progress bar on the terminal: %q", text)
		}
		if strings.Contains(text, "\x1b") {
			t.Errorf("escapes on the terminal, want the bar drawn with carriage returns: %q", text)
		}
		if strings.Contains(text, "pushed 1/1 paths,") {
			t.Errorf("plain progress lines on a terminal, want the bar alone: %q", text)
		}
		if !strings.Contains(text, "pushed 1 of 1 paths") {
			t.Errorf("no summary after the bar: %q", text)
		}
		if proxy.Injected(0) != 1 {
			t.Errorf("the NAR upload was not stalled (%d)", proxy.Injected(0))
		}
	})
}

// maps reports whether two sets are equal.
func maps(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestPushURLParameters checks the store URL parameters push honours
// (priority, want-mass-query, compression-level, store) and those it
// refuses with one clear line, leaving the bucket untouched.
func TestPushURLParameters(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 5, "cli-params")
	lib := nixtest.Build(t, f, "lib")[0]
	key, _ := signing.GenerateSecretKey("cli-params-1")
	srv := s3test.Start(t, s3test.MinIO)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	cacheInfo := func(t *testing.T, b s3cache.Bucket) string {
		t.Helper()
		text, err := s3cache.ReadSmall(context.Background(), b, "nix-cache-info", 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		return string(text)
	}

	t.Run("nix-cache-info", func(t *testing.T) {
		for _, tc := range []struct{ params, want string }{
			{"", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"},
			{"&priority=30", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"},
			{"&want-mass-query=false&priority=0", "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 0\n"},
			{"&want-mass-query=true&store=/nix/store&compression=zstd&compression-level=19", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"},
		} {
			name := srv.NewBucket(t)
			url := srv.StoreURL(name) + tc.params
			if code, _, stderr := runBin(t, env, "push", "--cache", url, lib); code != 0 {
				t.Fatalf("push --cache %s: exit %d: %s", url, code, stderr)
			}
			if got := cacheInfo(t, srv.Open(t, name)); got != tc.want {
				t.Errorf("push --cache %s wrote nix-cache-info %q, want %q", url, got, tc.want)
			}
		}
	})

	t.Run("init", func(t *testing.T) {
		name := srv.NewBucket(t)
		url := srv.StoreURL(name)
		b := srv.Open(t, name)
		if code, stdout, stderr := runBin(t, creds(srv), "init", "--cache", url+"&priority=25"); code != 0 || cacheInfo(t, b) != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 25\n" {
			t.Fatalf("init priority=25: exit %d, %q %q; nix-cache-info %q", code, stdout, stderr, cacheInfo(t, b))
		}
		// A plain init leaves it; one asking for other values rewrites it.
		if code, _, _ := runBin(t, creds(srv), "init", "--cache", url); code != 0 || !strings.Contains(cacheInfo(t, b), "Priority: 25") {
			t.Errorf("a plain init changed nix-cache-info to %q", cacheInfo(t, b))
		}
		code, stdout, _ := runBin(t, creds(srv), "init", "--cache", url+"&want-mass-query=0", "--priority", "10")
		if code != 0 || cacheInfo(t, b) != "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 10\n" || !strings.Contains(stdout, "updated") {
			t.Errorf("init want-mass-query=0 --priority 10: exit %d, %q; nix-cache-info %q", code, stdout, cacheInfo(t, b))
		}
	})

	t.Run("refused", func(t *testing.T) {
		name := srv.NewBucket(t)
		b := srv.Open(t, name)
		if code, _, stderr := runBin(t, env, "push", "--cache", srv.StoreURL(name), lib); code != 0 {
			t.Fatalf("push: exit %d: %s", code, stderr)
		}
		before := listing(t, b)
		for _, tc := range []struct {
			params string
			args   []string
			says   []string
		}{
			{"&write-nar-listing=true", nil, []string{"write-nar-listing", "does not write .ls"}},
			{"&narinfo-compression=xz", nil, []string{"narinfo-compression", "Nix 2.34"}},
			{"&compression-level=12", nil, []string{"compression-level", "out of range for xz (0 to 9"}},
			{"&compression=zstd&compression-level=23", nil, []string{"compression-level", "0 to 22"}},
			{"&compression-level=20", []string{"--compression", "zstd"}, nil},
			{"&store=/gnu/store", nil, []string{"store=/gnu/store", "/nix/store"}},
			{"&store=relative", nil, []string{"store", "absolute"}},
			{"&index-debug-info=true", nil, []string{"index-debug-info", "does not write debuginfo indexes"}},
			{"&multipart-upload=false", nil, []string{"multipart-upload", "multipart upload"}},
			{"&multipart-threshold=104857600", nil, []string{"multipart-threshold", "multipart-chunk-size"}},
			{"&local-nar-cache=/tmp/nars", nil, []string{"local-nar-cache"}},
			{"&path-info-cache-size=1000", nil, []string{"path-info-cache-size"}},
			{"&system-features=kvm", nil, []string{"system-features"}},
			{"&trusted=1", nil, []string{"trusted", "substituters"}},
			{"&tls-certificate=/c.pem", nil, []string{"tls-certificate and tls-private-key go together"}},
			// What nixbucket does anyway, asked for.
			{"&index-debug-info=false&multipart-upload=true&ls-compression=br&log-compression=zstd&local-nar-cache=", []string{}, nil},
		} {
			url := srv.StoreURL(name) + tc.params
			code, stdout, stderr := runBin(t, env, append(append([]string{"push", "--cache", url}, tc.args...), lib)...)
			if tc.says == nil {
				// Valid for zstd, though not for the URL's default xz.
				if code != 0 {
					t.Errorf("%s %v: exit %d: %s", tc.params, tc.args, code, stderr)
				}
				continue
			}
			if code != exitUsage || stdout != "" {
				t.Errorf("%s: exit %d, stdout %q; want %d and nothing", tc.params, code, stdout, exitUsage)
			}
			oneErrorLine(t, stderr)
			for _, s := range tc.says {
				if !strings.Contains(stderr, s) {
					t.Errorf("%s: error %q does not say %q", tc.params, stderr, s)
				}
			}
			if after := listing(t, b); !slices.Equal(after, before) {
				t.Errorf("%s changed the bucket", tc.params)
			}
		}
	})
}

// TestKeyNixconf checks the nix.conf lines: the public key as Nix derives
// it, and the cache URL without the parameters only a writer needs.
func TestKeyNixconf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "cache.key")
	if code, _, stderr := runBin(t, nil, "key", "generate", "--name", "nixconf-1", "--secret-key-file", file); code != 0 {
		t.Fatalf("key generate: exit %d: %s", code, stderr)
	}
	pub, err := nixtest.Output(context.Background(), nil, "sh", "-c", "nix key convert-secret-to-public < "+file)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(file)
	for _, tc := range []struct{ url, want string }{
		{"s3://nix?endpoint=https://garage.example.org&region=garage", "s3://nix?endpoint=https://garage.example.org&region=garage"},
		{
			"s3://nix?endpoint=garage.example.org:3900&region=garage&scheme=http&secret-key=" + file +
				"&compression=zstd&compression-level=19&parallel-compression=true&multipart-upload=true&multipart-chunk-size=16777216" +
				"&multipart-threshold=1&buffer-size=16777216&storage-class=STANDARD&narinfo-compression=none&write-nar-listing=false" +
				"&ls-compression=br&log-compression=br&index-debug-info=false&priority=30&want-mass-query=true&store=/nix/store&profile=ci" +
				"&trusted=1&tls-certificate=/c.pem&tls-private-key=/c.key",
			"s3://nix?endpoint=garage.example.org:3900&region=garage&scheme=http&priority=30&want-mass-query=true&store=/nix/store&profile=ci" +
				"&trusted=1&tls-certificate=/c.pem&tls-private-key=/c.key",
		},
		{"https://cache.example.org", "https://cache.example.org"},
		{"file:///var/cache/nix?secret-key=/k&compression=none", "file:///var/cache/nix"},
	} {
		code, stdout, stderr := runBin(t, nil, "key", "nixconf", "--cache-url", tc.url, "--secret-key-file", file)
		want := "substituters = " + tc.want + "\ntrusted-public-keys = " + strings.TrimSpace(string(pub)) + "\n"
		if strings.HasPrefix(tc.url, "s3://") {
			// This machine's Nix is Debian's 2.8, without S3 support.
			want += serveWay(tc.want, nixS3No, "2.8.0")
		}
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("key nixconf --cache-url %s: exit %d, stderr %q, printed\n%s\nwant\n%s", tc.url, code, stderr, stdout, want)
		}
		if strings.Contains(stdout, strings.TrimPrefix(strings.TrimSpace(string(secret)), "nixconf-1:")) {
			t.Errorf("key nixconf printed the secret key")
		}
	}
	code, _, stderr := runBin(t, nil, "key", "nixconf", "--cache-url", "s3://nix")
	if code != exitBadKey {
		t.Errorf("key nixconf without a key: exit %d, want %d", code, exitBadKey)
	}
	oneErrorLine(t, stderr)
}

// TestPushPresenceCost counts, at an HTTP proxy in front of a real S3
// server, how push finds what the cache has: one path into a bucket of
// thousands of narinfos costs HEADs and at most a LIST page or two (not a
// listing of the whole bucket); hundreds of paths into a small bucket
// cost a listing and no HEAD of any narinfo.
func TestPushPresenceCost(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 300, "cli-presence")
	built := nixtest.Build(t, f, "lib", "dag")
	lib, dag := built[0], built[1]
	dagClosure := nixtest.Lines(t, "nix-store", "-qR", dag)
	key, _ := signing.GenerateSecretKey("cli-presence-1")
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())

	// A bucket with 4500 narinfos (5 LIST pages) and a NAR for each of
	// a few, put in parallel.
	big := srv.NewBucket(t)
	b := srv.Open(t, big)
	const dummies = 4500
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	for i := range dummies {
		g.Go(func() error {
			h := nixbase32.EncodeToString([]byte(fmt.Sprintf("dummy-narinfo-%06d", i)))[:32]
			text := "StorePath: /nix/store/" + h + "-dummy\n"
			if i%100 == 0 {
				if err := b.Put(ctx, "nar/"+h+".nar.xz", strings.NewReader("x"), 1, s3cache.PutOptions{}); err != nil {
					return err
				}
			}
			return b.Put(ctx, h+".narinfo", strings.NewReader(text), int64(len(text)), s3cache.PutOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	isNarinfoList := func(r *http.Request) bool {
		q := r.URL.Query()
		return r.Method == http.MethodGet && q.Has("list-type") && q.Get("prefix") == ""
	}
	isNarinfoHead := func(r *http.Request) bool {
		return r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, ".narinfo")
	}
	for _, tc := range []struct {
		name   string
		bucket string
		path   string
		paths  int
		heads  bool // HEADs expected, else a listing
	}{
		{"one path into a large bucket", big, lib, 1, true},
		{"many paths into a small bucket", srv.NewBucket(t), dag, len(dagClosure), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := s3test.NewFaultProxy(t, srv.Endpoint)
			url := "s3://" + tc.bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region
			code, stdout, stderr := runBin(t, env, "push", "--cache", url, "--json", tc.path)
			if code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			if p := decodePush(t, stdout); p.num(t, "pushed") != float64(tc.paths) {
				t.Fatalf("push: %v, want %d pushed", p, tc.paths)
			}
			lists, heads := proxy.Count(isNarinfoList), proxy.Count(isNarinfoHead)
			t.Logf("%d paths: %d LIST requests of the narinfos, %d HEADs of narinfos", tc.paths, lists, heads)
			if tc.heads {
				// Once before the lock, once under it; the early listing
				// is abandoned after its first round (three pages at once).
				if heads < 1 || heads > 2 || lists > 3 {
					t.Errorf("%d LISTs and %d HEADs, want HEADs (1 or 2) and at most 3 LISTs (the bucket has %d pages)", lists, heads, dummies/1000+1)
				}
			} else if heads != 0 || lists < 1 {
				t.Errorf("%d LISTs and %d HEADs, want a listing and no HEAD", lists, heads)
			}
		})
	}
}
