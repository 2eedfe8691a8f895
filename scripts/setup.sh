#!/usr/bin/env bash
# Installs and configures what nixbucket's demo or tests need on a Debian machine, then configures
# Debian's nix-bin as a single-user root Nix that builds without a sandbox, without build users and
# without network substituters. Idempotent; run as root (CI is root) or with sudo.
#
# Usage: scripts/setup.sh demo   what `make demo` uses: nix-bin and curl
#        scripts/setup.sh [test] what `make test` uses besides: xz-utils and zstd (reference decoders),
#                                time (make bench), gcc (make race), docker-registry, apache2-utils
#                                (htpasswd), skopeo and chromium (release publishing tests), prometheus
#                                (promtool checks the metrics)
set -euo pipefail

mode=${1:-test}
case $mode in
demo | test) ;;
*)
  echo "setup: unknown mode $mode (want demo or test)" >&2
  exit 2
  ;;
esac

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

need=()
want() { # command package...: the packages, unless the command is there
  command -v "$1" >/dev/null 2>&1 || need+=("${@:2}")
}
want nix-build nix-bin
want curl curl
if [ "$mode" = test ]; then
  want xz xz-utils
  want zstd zstd
  want /usr/bin/time time # make bench: peak RSS of each command
  want gcc gcc libc6-dev  # make race: the race detector needs cgo
  # Release publishing tests: a real registry with htpasswd auth, skopeo as an independent client, headless Chromium.
  want docker-registry docker-registry
  want htpasswd apache2-utils
  want skopeo skopeo
  want chromium chromium
  want promtool prometheus # promtool checks the metrics output
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup ($mode): installing ${need[*]} from Debian (apt-get; the first time, a few hundred MB for the tests, ~25 MB for the demo)" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q -o Dpkg::Use-Pty=0 "${need[@]}"
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
