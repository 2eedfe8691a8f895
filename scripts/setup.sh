#!/usr/bin/env bash
# Installs and configures what nixbucket's tests and demo need on a Debian machine:
# xz-utils and zstd (reference decoders), docker-registry, apache2-utils (htpasswd), skopeo and chromium (release
# publishing tests), and Debian's nix-bin as a single-user root Nix that builds without a sandbox, without
# build users and without network substituters. Idempotent; run as root (CI is root).
set -euo pipefail

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

need=()
command -v nix-build >/dev/null 2>&1 || need+=(nix-bin)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time) # make bench: peak RSS of each command
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev) # make race: the race detector needs cgo
# Release publishing tests: a real registry with htpasswd auth, skopeo as an independent client, headless Chromium.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

conf=/etc/nix/nix.conf
$sudo mkdir -p /etc/nix
$sudo touch "$conf"
set_opt() { # key value: replace or append one nix.conf line
  if grep -qE "^[[:space:]]*$1[[:space:]]*=" "$conf"; then
    $sudo sed -i -E "s|^[[:space:]]*$1[[:space:]]*=.*|$1 = $2|" "$conf"
  else
    echo "$1 = $2" | $sudo tee -a "$conf" >/dev/null
  fi
}
set_opt sandbox false
set_opt build-users-group ""
set_opt substituters ""
set_opt experimental-features nix-command
$sudo mkdir -p /nix/var/nix/gcroots /nix/var/nix/profiles /nix/store
nix-store --version >/dev/null
