#!/usr/bin/env bash
# make demo: the main job end to end on a fresh machine.
# Starts a local S3 server (versitygw, region garage), builds a small closure with Nix,
# pushes it with nixbucket (xz, signed), serves the bucket read-only over HTTP, and has
# real Nix substitute the closure into an empty store with signatures required.
set -euo pipefail
cd "$(dirname "$0")/.."
nb="${NIXBUCKET_BIN:-$PWD/bin/nixbucket}"
tools="${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}"
work=$(mktemp -d /tmp/nixbucket-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
source scripts/lib.sh # say, quote, run

# A random port with nothing listening on it, below Linux's range for outgoing connections' ports
# (32768-60999), so that no client connection holds it either.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while port=$(shuf -i 20000-32767 -n 1); listening "$port"; do :; done
export AWS_ACCESS_KEY_ID="demo$RANDOM" AWS_SECRET_ACCESS_KEY="demo-secret-$RANDOM$RANDOM"
say "1. A local S3 server: versitygw on 127.0.0.1:$port, region garage"
mkdir -p "$work/s3"
ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
  "$tools/versitygw" --port "127.0.0.1:$port" --region garage --keep-alive posix "$work/s3" >"$work/s3.log" 2>&1 &
pids+=($!)
cache="s3://demo?endpoint=http://127.0.0.1:$port&region=garage"
for i in $(seq 50); do "$nb" init --cache "$cache" >/dev/null 2>&1 && break; sleep 0.2; done
kill -0 "${pids[0]}" 2>/dev/null || { echo "versitygw did not start:" >&2; cat "$work/s3.log" >&2; exit 1; }
run "$nb" init --cache "$cache"

say "2. A signing key"
run "$nb" key generate --name demo-cache-1 --secret-key-file "$work/cache.key"
run "$nb" key nixconf --cache-url "$cache" --secret-key-file "$work/cache.key"

say "3. A sample closure built with Nix (no nixpkgs)"
out=$(nix-build scripts/demo.nix --no-out-link --argstr salt "demo-$(date +%s)" \
  --option sandbox false --option build-users-group '' --option substituters '' 2>/dev/null)
run "$nb" path-info -r "$out"

say "4. Push it (NAR streaming, xz in parallel, signed narinfos)"
run "$nb" push --cache "$cache" --secret-key-file "$work/cache.key" --root demo "$out"
say "   ...and again: nothing to upload"
run "$nb" push --cache "$cache" --secret-key-file "$work/cache.key" "$out"

say "5. Serve the private bucket read-only over HTTP"
"$nb" serve --cache "$cache" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 & # the system picks the port
pids+=($!)
for i in $(seq 100); do grep -q '^serving ' "$work/serve.log" && break; sleep 0.1; done
cat "$work/serve.log"
served=$(sed -n 's|^serving .* on \(http://[0-9.:]*\)$|\1|p' "$work/serve.log")
[ -n "$served" ] || { echo "nixbucket serve did not start" >&2; exit 1; }
run curl -s "$served/nix-cache-info" 2>/dev/null || true

say "6. Real Nix substitutes it into an empty store, signatures required"
# The public key as Nix derives it from the secret key (nixbucket's output is redacted, and its redactor can
# mistake a public key that has a 40-character run between '/'s for an AWS secret).
pub=$(nix key convert-secret-to-public <"$work/cache.key")
run nix copy --from "$served" --to "local?root=$work/empty" \
  --option trusted-public-keys "$pub" --option require-sigs true "$out"
printf '\nSubstituted into %s/nix/store:\n' "$work/empty"
ls "$work/empty/nix/store" | grep -v '^\.' | sed 's/^/  /'
say "7. Run the substituted program from the new store"
sed "s|/nix/store|$work/empty/nix/store|g" "$work/empty$out/bin/greet" | sh

say "8. Check the cache: signatures, NARs re-hashed, references; then its figures"
run "$nb" verify --cache "$cache" --trusted-public-key "$pub" --deep
run "$nb" stats --cache "$cache"

say "9. Nix refuses the same paths signed by a key it does not trust"
"$nb" key generate --name demo-cache-1 --secret-key-file "$work/other.key" >/dev/null
other=$(nix key convert-secret-to-public <"$work/other.key")
if nix copy --from "$served" --to "local?root=$work/refused" \
  --option trusted-public-keys "$other" --option require-sigs true "$out" 2>"$work/refused.log"; then
  echo "unexpected: Nix accepted paths signed by an untrusted key" >&2; exit 1
fi
tail -1 "$work/refused.log"
say "Done: pushed, served, substituted and verified with real Nix."
