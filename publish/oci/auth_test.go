package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nixbucket/nixbucket/internal/ocitest"
	"github.com/nixbucket/nixbucket/publish/oci"
)

// resolve returns the credentials kc gives for the repository ref.
func resolve(t *testing.T, kc authn.Keychain, ref string) authn.AuthConfig {
	t.Helper()
	repo, err := name.NewRepository(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(repo)
	if err != nil {
		t.Fatalf("resolving %s: %v", ref, err)
	}
	ac, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return *ac
}

// TestKeychainAuths reads the "auths" of a docker config.json as the
// docker CLI does: every way of writing a registry's key and its secret.
func TestKeychainAuths(t *testing.T) {
	kc, err := oci.Keychain(`{"auths":{
		"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
		"http://127.0.0.1:5000":{"username":"u2","password":"p2"},
		"ghcr.io":{"identitytoken":"tok"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want authn.AuthConfig
	}{
		{"alpine", authn.AuthConfig{Username: "user", Password: "pa:ss"}},
		{"docker.io/dxflrs/garage", authn.AuthConfig{Username: "user", Password: "pa:ss"}},
		{"127.0.0.1:5000/x/y", authn.AuthConfig{Username: "u2", Password: "p2"}},
		{"ghcr.io/o/r", authn.AuthConfig{IdentityToken: "tok"}},
		{"quay.io/other", authn.AuthConfig{}},
		{"127.0.0.1:5001/x", authn.AuthConfig{}},
	} {
		if got := resolve(t, kc, tc.ref); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.ref, got, tc.want)
		}
	}
}

func TestKeychainBad(t *testing.T) {
	for _, bad := range []string{
		`{`, `{"auths":`, `[]`, `{"auths":[]}`, `{"auths":{"x":"secret"}}`, `{"credHelpers":{"x":1}}`,
		`{"auths":{"x":{"auth":"%%%secret"}}}`, `{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}`,
	} {
		_, err := oci.Keychain(bad)
		if !errors.Is(err, oci.ErrBadAuth) {
			t.Errorf("Keychain(%s): %v, want ErrBadAuth", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q shows the secret", err)
		}
	}
	if kc, err := oci.Keychain(" \n"); err != nil || kc != authn.DefaultKeychain {
		t.Errorf("Keychain of blank text = %v, %v; want the default keychain", kc, err)
	}
}

func FuzzLoadDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}`))
	f.Add([]byte(`{"auths":{"localhost:5000":{"username":"u","password":"secretpw"}}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"secretpw"}}}`))
	f.Add([]byte(`{"credHelpers":{"ghcr.io":"secretpw"},"credsStore":"pass"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := oci.LoadDockerConfig(data)
		if err == nil {
			return
		}
		if !errors.Is(err, oci.ErrBadAuth) {
			t.Fatalf("error %v does not wrap ErrBadAuth", err)
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("error %q shows a secret", err)
		}
	})
}

// TestKeychainHelpers pushes to a real registry (htpasswd) with the
// credentials a docker-credential-NAME program gives, named by the
// config's credHelpers for that registry or by its credsStore, and checks
// that the program was asked for that registry and that the image is
// there; a helper with the wrong password gets the push denied.
func TestKeychainHelpers(t *testing.T) {
	reg := ocitest.Start(t)
	t.Setenv("DOCKER_AUTH_CONFIG", "") // docker/cli's own variable would take precedence
	bin := filepath.Join(t.TempDir(), "garage")
	if err := os.WriteFile(bin, []byte("a static binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := oci.BuildImage(oci.ImageOptions{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Files: []oci.File{{Src: bin, Dest: "/garage"}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name     string
		config   string
		password string
		denied   bool
	}{
		{"auths", reg.DockerAuth(), "", false},
		{"credHelpers", fmt.Sprintf(`{"credHelpers":{%q:"nbtest"}}`, reg.Host), reg.Password, false},
		{"credsStore", `{"credsStore":"nbtest"}`, reg.Password, false},
		{"credHelpers over auths", fmt.Sprintf(`{"auths":{%q:{"auth":"Y2k6d3Jvbmc="}},"credHelpers":{%q:"nbtest"}}`, reg.Host, reg.Host), reg.Password, false},
		{"wrong password", fmt.Sprintf(`{"credHelpers":{%q:"nbtest"}}`, reg.Host), "wrong", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls string
			if tc.password != "" {
				calls = reg.CredHelper(t, "nbtest", reg.User, tc.password)
			}
			kc, err := oci.Keychain(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			ref := fmt.Sprintf("%s/helpers/garage:v%d", reg.Host, i)
			d, err := oci.Push(context.Background(), img, ref, oci.RemoteOptions{Keychain: kc})
			if tc.denied {
				if !errors.Is(err, oci.ErrDenied) {
					t.Errorf("push with the wrong password: %v, want ErrDenied", err)
				}
				if err != nil && strings.Contains(err.Error(), tc.password) {
					t.Errorf("error %q shows the password", err)
				}
			} else if err != nil {
				t.Fatalf("push: %v", err)
			}
			if calls != "" {
				data, err := os.ReadFile(calls)
				if err != nil || !slices.Contains(strings.Fields(string(data)), reg.Host) {
					t.Errorf("docker-credential-nbtest was asked for %q (%v), want %s", data, err, reg.Host)
				}
			}
			if tc.denied {
				return
			}
			var m struct{ Digest string }
			if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", "--creds", reg.Creds(), "docker://"+ref), &m); err != nil {
				t.Fatal(err)
			}
			if m.Digest != d.String() {
				t.Errorf("the registry has %s at %s, the push returned %s", m.Digest, ref, d)
			}
		})
	}
}
