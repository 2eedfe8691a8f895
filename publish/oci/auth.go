package oci

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// ErrBadAuth is returned (wrapped) for a docker configuration that cannot
// be parsed. Its messages never include the secrets.
var ErrBadAuth = errors.New("invalid docker auth configuration")

// LoadDockerConfig parses the text of a docker config.json with docker/cli's
// own loader, so that everything the docker CLI reads there counts: "auths"
// (an "auth" of base64(user:password), or "username" and "password",
// "identitytoken", "registrytoken"), "credHelpers" (a docker-credential-NAME
// program per registry) and "credsStore" (one for every other registry).
func LoadDockerConfig(data []byte) (*configfile.ConfigFile, error) {
	cf, err := config.LoadFromReader(strings.NewReader(string(data)))
	if err != nil {
		return nil, badAuth(err)
	}
	return cf, nil
}

// badAuth words a loader error without the secrets: docker/cli's errors
// are those of encoding/json and encoding/base64, or its own about a
// decoded "auth"; none is passed on verbatim.
func badAuth(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var be base64.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: not JSON (it ends early)", ErrBadAuth)
	case errors.As(err, &se):
		return fmt.Errorf("%w: not JSON (syntax error at byte %d)", ErrBadAuth, se.Offset)
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%w: %s is not a JSON %s", ErrBadAuth, te.Field, jsonKind(te.Type.Kind().String()))
	case errors.As(err, &te):
		return fmt.Errorf("%w: not a docker config.json object", ErrBadAuth)
	case errors.As(err, &be):
		return fmt.Errorf("%w: an auth is not base64 (bad byte at %d)", ErrBadAuth, int64(be))
	}
	return fmt.Errorf("%w: an auth is not base64(user:password)", ErrBadAuth)
}

// jsonKind names a Go kind as the JSON type it decodes from.
func jsonKind(k string) string {
	switch k {
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return k
}

// configKeychain resolves registries from a docker config as
// go-containerregistry's authn.DefaultKeychain resolves them from
// ~/.docker/config.json: by repository, then by registry (Docker Hub under
// its historical key), through the config's credential helper or store
// for that registry when it names one.
type configKeychain struct{ cf *configfile.ConfigFile }

func (k configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, key := range []string{r.String(), r.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := k.cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", key, err)
		}
		cfg := authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
			IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
		if cfg != (authn.AuthConfig{}) {
			return authn.FromConfig(cfg), nil
		}
	}
	return authn.Anonymous, nil
}

// Keychain returns the credentials to push with: those of dockerAuth (the
// text of a docker config.json, as in $DOCKER_AUTH, read as the docker CLI
// reads its config.json: auths, credHelpers, credsStore) if it is not
// empty, else the default docker configuration (~/.docker/config.json,
// $DOCKER_CONFIG and its credential helpers).
func Keychain(dockerAuth string) (authn.Keychain, error) {
	if strings.TrimSpace(dockerAuth) == "" {
		return authn.DefaultKeychain, nil
	}
	cf, err := LoadDockerConfig([]byte(dockerAuth))
	if err != nil {
		return nil, err
	}
	return configKeychain{cf}, nil
}
