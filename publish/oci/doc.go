// Package oci builds and pushes the release container images without a
// daemon, with go-containerregistry: a FROM-scratch image holding a few
// files (the static binaries) for one platform, pushed to a registry or
// written to an OCI image layout directory, and a multi-platform image
// index over per-platform images (what the seed did with kaniko's
// "executor --customPlatform" and manifest-tool "push from-spec").
//
// Platforms are written OS/ARCH[/VARIANT] with Go's GOOS and GOARCH names,
// as in the OCI image index specification (image-spec/image-index.md):
// linux/amd64, linux/386, linux/arm64, linux/arm/v6.
//
// Registry credentials come from a docker config.json, read with docker/cli's
// own loader (cli/config/configfile), so it means what it means to the
// docker CLI: "auths" ({"<registry>": {"auth": base64("user:password")}},
// or "username" and "password", or "identitytoken"/"registrytoken"),
// "credHelpers" (registry → NAME of a docker-credential-NAME program on
// PATH) and "credsStore" (the program for every other registry).
// DOCKER_AUTH holds that document's text (as the seed's CI passed it);
// without it the default docker configuration (~/.docker/config.json,
// $DOCKER_CONFIG, credential helpers) is used.
package oci
