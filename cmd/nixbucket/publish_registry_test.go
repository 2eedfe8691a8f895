package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/ocitest"
)

// TestPublishDockerInsecureTLS pushes to Debian's docker-registry serving
// TLS with a self-signed certificate on loopback: without --insecure the
// push is refused with one clear line and publishes nothing; with it, the
// image and an index are pushed, and skopeo, trusting that certificate,
// reads them back.
func TestPublishDockerInsecureTLS(t *testing.T) {
	reg := ocitest.StartTLS(t)
	t.Setenv("DOCKER_AUTH", reg.DockerAuth())
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no other credentials
	bin := filepath.Join(t.TempDir(), "garage")
	if err := os.WriteFile(bin, []byte("a static binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/dxflrs/amd64_garage:v1.0.0"
	verified := []string{"--cert-dir", reg.CertDir, "--creds", reg.Creds()}

	for _, args := range [][]string{
		{"publish", "docker", "--image", ref, "--platform", "linux/amd64", bin},
		{"publish", "docker-index", "--image", reg.Host + "/dxflrs/garage:v1.0.0", ref},
	} {
		code, _, errs := runCLI(t, args...)
		if code != exitRemote || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "registry TLS certificate not trusted") ||
			!strings.Contains(errs, "--insecure") || !strings.Contains(errs, reg.Host) {
			t.Errorf("%s without --insecure: exit %d, stderr %q; want exit %d and one line naming the untrusted certificate and --insecure",
				args[1], code, errs, exitRemote)
		}
		if strings.Contains(errs, reg.Password) {
			t.Errorf("the password is on stderr")
		}
	}
	if _, err := ocitest.SkopeoErr(t, append([]string{"inspect", "--raw"}, append(verified, "docker://"+ref)...)...); err == nil {
		t.Errorf("%s exists after a refused push", ref)
	}

	out := mustCLI(t, "publish", "docker", "--insecure", "--image", ref, "--platform", "linux/amd64", "--cmd", "/garage server", bin)
	if !strings.HasPrefix(out, "pushed linux/amd64 "+ref+"@sha256:") {
		t.Errorf("publish docker --insecure printed %q", out)
	}
	var cfg struct {
		Architecture string
		Config       struct{ Cmd []string }
	}
	if err := json.Unmarshal(ocitest.Skopeo(t, append([]string{"inspect", "--config"}, append(verified, "docker://"+ref)...)...), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "amd64" || strings.Join(cfg.Config.Cmd, " ") != "/garage server" {
		t.Errorf("pushed image: %+v", cfg)
	}
	// The registry's certificate really is one no system trusts: skopeo
	// without it refuses too.
	if _, err := ocitest.SkopeoErr(t, "inspect", "--raw", "--creds", reg.Creds(), "docker://"+ref); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("skopeo without the certificate: %v, want a certificate error", err)
	}

	index := reg.Host + "/dxflrs/garage:v1.0.0"
	out = mustCLI(t, "publish", "docker-index", "--insecure", "--image", index, ref)
	if !strings.Contains(out, "pushed index "+index+"@sha256:") {
		t.Errorf("publish docker-index --insecure printed %q", out)
	}
	var idx struct {
		Manifests []struct{ Platform struct{ Architecture string } }
	}
	if err := json.Unmarshal(ocitest.Skopeo(t, append([]string{"inspect", "--raw"}, append(verified, "docker://"+index)...)...), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Platform.Architecture != "amd64" {
		t.Errorf("pushed index: %+v", idx)
	}
}

// TestPublishDockerHomeConfig runs the nixbucket binary with HOME set and
// neither DOCKER_AUTH nor DOCKER_CONFIG: the credentials come from the
// literal ~/.docker/config.json, and without that file the push is denied.
func TestPublishDockerHomeConfig(t *testing.T) {
	reg := ocitest.Start(t)
	bin := filepath.Join(t.TempDir(), "garage")
	if err := os.WriteFile(bin, []byte("a static binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(reg.DockerAuth()), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/dxflrs/arm64_garage:v1.0.0"
	code, out, errs := runBin(t, []string{"HOME=" + home}, "publish", "docker", "--image", ref, "--platform", "linux/arm64", bin)
	if code != 0 || !strings.HasPrefix(out, "pushed linux/arm64 "+ref+"@sha256:") {
		t.Fatalf("publish docker with ~/.docker/config.json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	var cfg struct{ Architecture string }
	if err := json.Unmarshal(ocitest.Skopeo(t, "inspect", "--tls-verify=false", "--creds", reg.Creds(), "--config", "docker://"+ref), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "arm64" {
		t.Errorf("pushed image architecture %q", cfg.Architecture)
	}

	// A HOME without the file: no credentials, denied.
	code, _, errs = runBin(t, nil, "publish", "docker", "--image", reg.Host+"/dxflrs/anon:v1", "--platform", "linux/arm64", bin)
	if code != exitRemote || !strings.Contains(errs, "registry denied access") {
		t.Errorf("publish docker without credentials: exit %d, stderr %q", code, errs)
	}
	oneErrorLine(t, errs)
}
