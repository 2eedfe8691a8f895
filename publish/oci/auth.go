package oci

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ErrBadAuth is returned (wrapped) for a docker configuration that cannot
// be parsed. Its messages never include the secrets.
var ErrBadAuth = errors.New("invalid docker auth configuration")

// dockerHub is the registry name go-containerregistry gives Docker Hub.
const dockerHub = "index.docker.io"

// ParseDockerConfig parses the "auths" of a docker config.json and returns
// the credentials by registry host (lower-case, without scheme or path;
// Docker Hub's keys all become index.docker.io).
func ParseDockerConfig(data []byte) (map[string]authn.AuthConfig, error) {
	var cf struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cf); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: not JSON (syntax error at byte %d)", ErrBadAuth, se.Offset)
		}
		return nil, fmt.Errorf("%w: not a docker config.json object", ErrBadAuth)
	}
	out := make(map[string]authn.AuthConfig, len(cf.Auths))
	for key, a := range cf.Auths {
		host := RegistryHost(key)
		if host == "" {
			return nil, fmt.Errorf("%w: empty registry name in auths", ErrBadAuth)
		}
		ac := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%w: the auth of %s is not base64", ErrBadAuth, host)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%w: the auth of %s is not base64(user:password)", ErrBadAuth, host)
			}
			ac.Username, ac.Password = user, pass
		}
		out[host] = ac
	}
	return out, nil
}

// RegistryHost normalises a config.json auths key ("https://index.docker.io/v1/",
// "http://127.0.0.1:5000", "ghcr.io") to the registry host name
// go-containerregistry uses.
func RegistryHost(key string) string {
	h := strings.ToLower(strings.TrimSpace(key))
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return h
}

// configKeychain resolves registries from a parsed docker config.
type configKeychain map[string]authn.AuthConfig

func (k configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if ac, ok := k[RegistryHost(r.RegistryStr())]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// Keychain returns the credentials to push with: those of dockerAuth (the
// text of a docker config.json, as in $DOCKER_AUTH) if it is not empty,
// else the default docker configuration (~/.docker/config.json,
// $DOCKER_CONFIG and credential helpers).
func Keychain(dockerAuth string) (authn.Keychain, error) {
	if strings.TrimSpace(dockerAuth) == "" {
		return authn.DefaultKeychain, nil
	}
	m, err := ParseDockerConfig([]byte(dockerAuth))
	if err != nil {
		return nil, err
	}
	return configKeychain(m), nil
}
