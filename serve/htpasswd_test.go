package serve_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
)

// htpasswd adds user with password to file with Apache's htpasswd -B
// (bcrypt), creating the file.
func htpasswd(t *testing.T, file, user, password string) {
	t.Helper()
	args := []string{"-B", "-b", file, user, password}
	if _, err := os.Stat(file); err != nil {
		args = append([]string{"-c"}, args...)
	}
	if out, err := exec.Command("htpasswd", args...).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd (apt-get install apache2-utils): %v: %s", err, out)
	}
}

// TestHtpasswd reads a file written by Apache's htpasswd -B and checks
// passwords, again after they were remembered; it refuses files with
// weaker hashes without showing them; and a handler with Users answers 401
// with a Basic challenge to a request without the right password, before
// looking at the key.
func TestHtpasswd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "htpasswd")
	htpasswd(t, file, "nix", "s3cret pass:word")
	htpasswd(t, file, "ci", "other")
	users, err := serve.LoadHtpasswd(file)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, tc := range []struct {
			user, password string
			ok             bool
		}{
			{"nix", "s3cret pass:word", true},
			{"ci", "other", true},
			{"nix", "other", false},
			{"ci", "s3cret pass:word", false},
			{"nobody", "other", false},
			{"", "", false},
			{"nix", "", false},
		} {
			if got := users.Authenticate(tc.user, tc.password); got != tc.ok {
				t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.ok)
			}
		}
	}

	md5 := filepath.Join(dir, "md5")
	if out, err := exec.Command("htpasswd", "-c", "-m", "-b", md5, "nix", "pw").CombinedOutput(); err != nil {
		t.Fatalf("htpasswd -m: %v: %s", err, out)
	}
	data, _ := os.ReadFile(md5)
	hash := strings.TrimSpace(strings.SplitN(string(data), ":", 2)[1])
	for name, text := range map[string]string{
		"md5":      string(data),
		"plain":    "nix:pw\n",
		"sha1":     "nix:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
		"no colon": "nix\n",
		"empty":    "# nobody\n\n",
		"twice":    "nix:" + hash + "\n",
	} {
		if name == "twice" {
			good, _ := os.ReadFile(file)
			text = string(good) + strings.Split(string(good), "\n")[0] + "\n"
		}
		_, err := serve.ParseHtpasswd(strings.NewReader(text))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "$apr1$") || strings.Contains(err.Error(), "$2y$") || strings.Contains(err.Error(), "{SHA}") {
			t.Errorf("%s: the error shows a hash: %v", name, err)
		}
	}

	b := s3cache.NewMemBucket()
	put(t, b, object{key: "nix-cache-info", data: []byte("StoreDir: /nix/store\n")})
	web := httptest.NewServer(serve.New(b, serve.Options{Users: users}))
	defer web.Close()
	for _, tc := range []struct {
		path, user, password string
		status               int
	}{
		{"/nix-cache-info", "", "", 401},
		{"/nix-cache-info", "nix", "wrong", 401},
		{"/nix-cache-info", "nobody", "s3cret pass:word", 401},
		{"/locks/x", "", "", 401},
		{"/%00", "", "", 401},
		{"/nix-cache-info", "nix", "s3cret pass:word", 200},
		{"/locks/x", "nix", "s3cret pass:word", 404},
	} {
		req, _ := http.NewRequest(http.MethodGet, web.URL+tc.path, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s as %q: %s, want %d", tc.path, tc.user, resp.Status, tc.status)
		}
		if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s as %q: WWW-Authenticate %q, want a Basic challenge", tc.path, tc.user, resp.Header.Get("WWW-Authenticate"))
		}
		if tc.status == 200 && resp.Header.Get("Cache-Control") != "private, max-age=60" {
			t.Errorf("GET %s with a password: Cache-Control %q, want private", tc.path, resp.Header.Get("Cache-Control"))
		}
	}
}
