package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/ocitest"
)

// TestPublishDockerRealRegistry pushes the seed's four per-platform images
// and their multi-arch index to Debian's docker-registry with htpasswd
// auth, given as DOCKER_AUTH, and inspects them with skopeo.
func TestPublishDockerRealRegistry(t *testing.T) {
	reg := ocitest.Start(t)
	t.Setenv("DOCKER_AUTH", reg.DockerAuth())
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no other credentials
	dir := t.TempDir()
	bin := filepath.Join(dir, "garage")
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	creds := "--creds=" + reg.Creds()
	platforms := []struct{ platform, name, arch, variant string }{
		{"linux/amd64", "amd64", "amd64", ""},
		{"linux/386", "386", "386", ""},
		{"linux/arm64", "arm64", "arm64", ""},
		{"linux/arm/v6", "arm", "arm", "v6"},
	}
	var sources []string
	for _, p := range platforms {
		ref := reg.Host + "/dxflrs/" + p.name + "_garage:v1.0.0"
		out := mustCLI(t, "publish", "docker", "--image", ref, "--platform", p.platform,
			"--cmd", `["/garage", "server"]`, "--env", "RUST_BACKTRACE=1", "--env", "RUST_LOG=garage=info,a=b", bin)
		if !strings.HasPrefix(out, "pushed "+p.platform+" "+ref+"@sha256:") {
			t.Errorf("publish docker printed %q", out)
		}
		sources = append(sources, ref)

		var cfg struct {
			Architecture, OS, Variant string
			Config                    struct{ Cmd, Entrypoint, Env []string }
		}
		if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", creds, "--config", "docker://"+ref), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.OS != "linux" || cfg.Architecture != p.arch || cfg.Variant != p.variant {
			t.Errorf("%s: platform %s/%s/%s", ref, cfg.OS, cfg.Architecture, cfg.Variant)
		}
		if !slices.Equal(cfg.Config.Cmd, []string{"/garage", "server"}) || len(cfg.Config.Entrypoint) != 0 ||
			!slices.Equal(cfg.Config.Env, []string{"RUST_BACKTRACE=1", "RUST_LOG=garage=info,a=b"}) {
			t.Errorf("%s: config %+v", ref, cfg.Config)
		}
		// The binary extracted by skopeo is the input, byte for byte.
		out2 := filepath.Join(t.TempDir(), "img")
		ocitest.Skopeo(t, "copy", "--src-tls-verify=false", "--src-creds="+reg.Creds(), "docker://"+ref, "dir:"+out2)
		var man struct{ Layers []struct{ Digest string } }
		if err := json.Unmarshal(readFile(t, filepath.Join(out2, "manifest.json")), &man); err != nil {
			t.Fatal(err)
		}
		if len(man.Layers) != 1 {
			t.Fatalf("%s: %d layers, want 1", ref, len(man.Layers))
		}
		got := fileInLayer(t, filepath.Join(out2, strings.TrimPrefix(man.Layers[0].Digest, "sha256:")), "garage")
		if !bytes.Equal(got, data) {
			t.Errorf("%s: /garage in the image differs from the input (%d bytes, want %d)", ref, len(got), len(data))
		}
	}

	// An entrypoint given as words.
	ep := reg.Host + "/dxflrs/ep:v1"
	mustCLI(t, "publish", "docker", "--image", ep, "--platform", "linux/amd64", "--entrypoint", "/usr/bin/garage", "--cmd", "server --config /etc/garage.toml", bin+":/usr/bin/")
	var cfg struct {
		Config struct{ Cmd, Entrypoint []string }
	}
	if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", creds, "--config", "docker://"+ep), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/bin/garage"}) || !slices.Equal(cfg.Config.Cmd, []string{"server", "--config", "/etc/garage.toml"}) {
		t.Errorf("%s: config %+v", ep, cfg.Config)
	}

	index := reg.Host + "/dxflrs/garage:v1.0.0"
	out := mustCLI(t, append([]string{"publish", "docker-index", "--image", index}, sources...)...)
	if !strings.Contains(out, "pushed index "+index+"@sha256:") || !strings.Contains(out, "linux/arm/v6 "+sources[3]) {
		t.Errorf("publish docker-index printed %q", out)
	}
	var idx struct {
		MediaType string
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture, Variant string }
		}
	}
	if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", creds, "--raw", "docker://"+index), &idx); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range idx.Manifests {
		plats = append(plats, strings.TrimSuffix(m.Platform.OS+"/"+m.Platform.Architecture+"/"+m.Platform.Variant, "/"))
	}
	if want := []string{"linux/amd64", "linux/386", "linux/arm64", "linux/arm/v6"}; !slices.Equal(plats, want) {
		t.Errorf("index platforms %q, want %q", plats, want)
	}
	// skopeo resolves the index to the platform it is asked for.
	var arm struct{ Architecture, Variant string }
	if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", creds, "--override-arch", "arm", "--override-variant", "v6", "--config", "docker://"+index), &arm); err != nil {
		t.Fatal(err)
	}
	if arm.Architecture != "arm" || arm.Variant != "v6" {
		t.Errorf("index resolved for arm/v6 to %+v", arm)
	}

	t.Run("bad input", func(t *testing.T) {
		wrong := `{"auths":{"` + reg.Host + `":{"username":"ci","password":"not-the-password"}}}`
		for _, tc := range []struct {
			name string
			env  string
			args []string
			code int
			want string
		}{
			{"missing file", reg.DockerAuth(), []string{"publish", "docker", "--image", reg.Host + "/bad/missing:v1", "--platform", "linux/amd64", filepath.Join(dir, "nope")}, exitNotFound, "not found"},
			{"bad platform", reg.DockerAuth(), []string{"publish", "docker", "--image", reg.Host + "/bad/plat:v1", "--platform", "linux/x86_64", bin}, exitUsage, "unknown architecture"},
			{"no platform", reg.DockerAuth(), []string{"publish", "docker", "--image", reg.Host + "/bad/plat:v1", bin}, exitUsage, "no platform"},
			{"auth failure", wrong, []string{"publish", "docker", "--image", reg.Host + "/bad/auth:v1", "--platform", "linux/amd64", bin}, exitRemote, "registry denied access"},
			{"no credentials", "", []string{"publish", "docker", "--image", reg.Host + "/bad/anon:v1", "--platform", "linux/amd64", bin}, exitRemote, "registry denied access"},
			{"bad DOCKER_AUTH", `{"auths":`, []string{"publish", "docker", "--image", reg.Host + "/bad/x:v1", "--platform", "linux/amd64", bin}, exitUsage, "DOCKER_AUTH"},
			{"unreachable", reg.DockerAuth(), []string{"publish", "docker", "--image", "127.0.0.1:1/bad/x:v1", "--platform", "linux/amd64", bin}, exitRemote, "registry unreachable"},
			{"index auth failure", wrong, []string{"publish", "docker-index", "--image", reg.Host + "/bad/idx:v1", sources[0]}, exitRemote, "registry denied access"},
			{"index of a missing image", reg.DockerAuth(), []string{"publish", "docker-index", "--image", reg.Host + "/bad/idx:v1", reg.Host + "/nope/nope:v1"}, exitNotFound, "image not found"},
		} {
			t.Setenv("DOCKER_AUTH", tc.env)
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("%s: exit %d, stderr %q; want exit %d and one line with %q", tc.name, code, errs, tc.code, tc.want)
			}
			if strings.Contains(errs, reg.Password) {
				t.Errorf("%s: the password is on stderr", tc.name)
			}
		}
		// Nothing was published under the refused names.
		for _, repo := range []string{"bad/missing", "bad/plat", "bad/auth", "bad/anon", "bad/idx"} {
			if _, err := ocitest.SkopeoErr(t, "inspect", "--tls-verify=false", creds, "--raw", "docker://"+reg.Host+"/"+repo+":v1"); err == nil {
				t.Errorf("%s:v1 exists after a refused publish", repo)
			}
		}
	})

	t.Run("docker config file", func(t *testing.T) {
		// Without DOCKER_AUTH, the credentials come from the docker configuration.
		cfgDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(reg.DockerAuth()), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", cfgDir)
		t.Setenv("DOCKER_AUTH", "")
		ref := reg.Host + "/dxflrs/fromconfig:v1"
		mustCLI(t, "publish", "docker", "--image", ref, "--platform", "linux/amd64", bin)
		ocitest.Skopeo(t, "inspect", "--tls-verify=false", creds, "--raw", "docker://"+ref)
	})

	t.Run("OCI layout", func(t *testing.T) {
		ld := filepath.Join(t.TempDir(), "layout")
		out := mustCLI(t, "publish", "docker", "--oci-layout", ld, "--image", "v1.0.0", "--platform", "linux/arm64", bin)
		if !strings.Contains(out, "wrote linux/arm64 image sha256:") {
			t.Errorf("printed %q", out)
		}
		var cfg struct{ Architecture string }
		if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--config", "oci:"+ld+":v1.0.0"), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != "arm64" {
			t.Errorf("layout image architecture %q", cfg.Architecture)
		}
	})
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fileInLayer returns the content of name in a gzip-compressed layer tar.
func fileInLayer(t *testing.T, layer, name string) []byte {
	t.Helper()
	f, err := os.Open(layer)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in layer %s", name, layer)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			if h.Mode&0o111 == 0 || h.Uid != 0 {
				t.Errorf("%s: mode %o uid %d", name, h.Mode, h.Uid)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}
