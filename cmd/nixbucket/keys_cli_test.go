package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// TestSeveralKeys signs with several keys given each way push takes them
// (repeated --secret-key-file, the URL's secret-key= and secret-keys=, a
// multi-line NIXBUCKET_SECRET_KEY): every narinfo carries one valid
// signature per key; key public and key nixconf print every public key,
// as Nix derives them.
func TestSeveralKeys(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-keys")
	lib := nixtest.Build(t, f, "lib")[0]
	dir := t.TempDir()
	names := []string{"keys-a-1", "keys-b-1", "keys-c-1"}
	files := make([]string, len(names))
	pubs := make([]string, len(names))
	var texts []string
	for i, n := range names {
		files[i] = filepath.Join(dir, n+".sec")
		if code, _, stderr := runBin(t, nil, "key", "generate", "--name", n, "--secret-key-file", files[i]); code != 0 {
			t.Fatalf("key generate: exit %d: %s", code, stderr)
		}
		pub, err := nixtest.Output(context.Background(), nil, "sh", "-c", "nix key convert-secret-to-public < "+files[i])
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = strings.TrimSpace(string(pub))
		text, _ := os.ReadFile(files[i])
		texts = append(texts, string(text))
	}

	code, stdout, stderr := runBin(t, nil, "key", "public", "--secret-key-file", files[0], "--secret-key-file", files[2])
	if want := pubs[0] + "\n" + pubs[2] + "\n"; code != 0 || stdout != want {
		t.Errorf("key public with two files: exit %d, %q (%s); want %q", code, stdout, stderr, want)
	}
	code, stdout, stderr = runBin(t, []string{"NIXBUCKET_SECRET_KEY=" + strings.Join(texts, "\n") + "\n"}, "key", "nixconf", "--cache-url", "https://cache.example.org")
	if want := "substituters = https://cache.example.org\ntrusted-public-keys = " + strings.Join(pubs, " ") + "\n"; code != 0 || stdout != want {
		t.Errorf("key nixconf with three keys in NIXBUCKET_SECRET_KEY: exit %d, %q (%s); want %q", code, stdout, stderr, want)
	}
	for _, secret := range texts {
		if _, data, _ := strings.Cut(strings.TrimSpace(secret), ":"); strings.Contains(stdout+stderr, data) {
			t.Errorf("a secret key was printed")
		}
	}
	code, _, stderr = runBin(t, nil, "key", "public", "--secret-key-file", files[0], "--secret-key-file", files[0])
	if code != exitBadKey || !strings.Contains(stderr, "keys-a-1") {
		t.Errorf("the same key twice: exit %d, %q; want %d naming the key", code, stderr, exitBadKey)
	}
	oneErrorLine(t, stderr)

	// A bad second key: the error names its line, never its text, nor
	// the good key's.
	_, body, _ := strings.Cut(strings.TrimSpace(texts[1]), ":")
	bad := "keys-bad-1:" + body[:40] + strings.Repeat("A", len(body)-40)
	code, stdout, stderr = runBin(t, []string{"NIXBUCKET_SECRET_KEY=" + texts[0] + "\n" + bad + "\n"}, "key", "public")
	if code != exitBadKey || !strings.Contains(stderr, "line 2") {
		t.Errorf("a bad second key in NIXBUCKET_SECRET_KEY: exit %d, %q; want %d naming line 2", code, stderr, exitBadKey)
	}
	oneErrorLine(t, stderr)
	for _, secret := range []string{texts[0], bad} {
		_, data, _ := strings.Cut(strings.TrimSpace(secret), ":")
		for i := 0; i+12 <= len(data); i += 12 {
			if strings.Contains(stdout+stderr, data[i:i+12]) {
				t.Fatalf("a fragment of a secret key was printed: %q", stdout+stderr)
			}
		}
	}

	srv := s3test.Start(t, s3test.MinIO)
	for _, tc := range []struct {
		name   string
		env    []string
		params string
		args   []string
		want   []int // indexes of the keys that must sign
	}{
		{"flags", nil, "", []string{"--secret-key-file", files[0], "--secret-key-file", files[1]}, []int{0, 1}},
		{"secret-keys=", nil, "&secret-keys=" + files[1] + "," + files[2], nil, []int{1, 2}},
		{"secret-key= and secret-keys=", nil, "&secret-key=" + files[0] + "&secret-keys=" + files[1] + "," + files[2], nil, []int{0, 1, 2}},
		{"the flags win over the URL", nil, "&secret-key=" + files[0], []string{"--secret-key-file", files[2]}, []int{2}},
		{"NIXBUCKET_SECRET_KEY", []string{"NIXBUCKET_SECRET_KEY=\n" + texts[2] + "\n\n" + texts[0]}, "", nil, []int{0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := srv.NewBucket(t)
			args := append(append([]string{"push", "--cache", srv.StoreURL(name) + tc.params}, tc.args...), lib)
			if code, _, stderr := runBin(t, append(creds(srv), tc.env...), args...); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			b := srv.Open(t, name)
			n := 0
			err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
				if _, ok := layout.NarInfoHash(o.Key); !ok {
					return nil
				}
				n++
				text, err := s3cache.ReadSmall(context.Background(), b, o.Key, 1<<16)
				if err != nil {
					return err
				}
				ni, err := narinfo.ParseString(string(text))
				if err != nil {
					return err
				}
				fp, err := ni.Fingerprint()
				if err != nil {
					return err
				}
				for i, p := range pubs {
					pk, _ := signing.ParsePublicKey(p)
					valid := 0
					for _, s := range ni.Sigs {
						if signing.Verify(pk, []byte(fp), s) {
							valid++
						}
					}
					if want := countOf(tc.want, i); valid != want {
						t.Errorf("%s: %d valid signatures by %s, want %d (sigs %q)", o.Key, valid, names[i], want, ni.Sigs)
					}
				}
				return nil
			})
			if err != nil || n == 0 {
				t.Fatalf("listing narinfos: %d, %v", n, err)
			}
		})
	}
}

// countOf is 1 if xs holds x, else 0.
func countOf(xs []int, x int) int {
	for _, y := range xs {
		if y == x {
			return 1
		}
	}
	return 0
}
