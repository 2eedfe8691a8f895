#!/usr/bin/env bash
# make bench: nixbucket against Nix on the same paths, in one run, as ratios.
#
# BENCH=all (default) runs both modes; BENCH=net only the network mode;
# BENCH=loopback only the loopback one.
#
# Loopback (TestBench, TestBenchLifecycle): corpus ../shared/bench/corpus.nix
# (medium 216 MB, dag 2001 paths, big 1 GiB; NIXBUCKET_BENCH_FULL=1 adds
# toolchain 740 MB): nar, path-info, nix copy --to file:// against push to
# versitygw on loopback; then stats and gc --dry-run on a synthetic
# 50 000-object bucket.
#
# Network (TestBenchLink first, then TestBenchNet): nix copy --to http:// against push
# to versitygw, both through the same toxiproxy delay line, at each RTT of
# NIXBUCKET_BENCH_RTT (ms, default 0,20,80), cases NIXBUCKET_BENCH_CASES
# (default dag,noop,zstd,xz,mixed,big), tools NIXBUCKET_BENCH_TOOLS (default
# nix,nixbucket). Its table lands in internal/bench/bench-net.md and, when
# the run passes, in README.md between <!-- bench-net --> and
# <!-- /bench-net -->. Slow: at 80 ms Nix alone takes ~14 min on dag; the
# whole default network mode is about 40 min on two cores. A line per tool
# run and per case is printed as it finishes.
set -euo pipefail
cd "$(dirname "$0")/.."
export NIXBUCKET_BIN="$PWD/bin/nixbucket"
export NIXBUCKET_CORPUS="${NIXBUCKET_CORPUS:-$PWD/../shared/bench/corpus.nix}"
mode="${BENCH:-all}"
case "$mode" in
all) run='^TestBench' ;;
net) run='^TestBench(Link|Net)$' ;;
loopback) run='^TestBench(Lifecycle)?$' ;;
*) echo "bench.sh: BENCH=$mode: want all, net or loopback" >&2; exit 2 ;;
esac
table=internal/bench/bench-net.md
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
# --line-buffered: each result shows as it comes, not when a pipe buffer fills.
go test -tags bench -count=1 -timeout 180m -run "$run" -v ./internal/bench/ 2>&1 |
  tee bench.log | grep --line-buffered -v -E '^=== (RUN|PAUSE|CONT)'

# The README's performance section gets the table of a whole network run
# (every RTT, case and tool, no profiling) that passed; a slice of it
# leaves the README alone.
partial="${NIXBUCKET_BENCH_RTT:-}${NIXBUCKET_BENCH_CASES:-}${NIXBUCKET_BENCH_TOOLS:-}${NIXBUCKET_BENCH_PROFILE:-}"
if [[ -n $partial && $table -nt $stamp ]]; then
  echo "bench.sh: a slice of the network mode: its table is in $table; README.md is left as it was"
elif [[ $table -nt $stamp ]]; then
  if grep -q '^<!-- bench-net -->$' README.md && grep -q '^<!-- /bench-net -->$' README.md; then
    awk -v table="$table" '
      /^<!-- bench-net -->$/ { print; print ""; while ((getline line < table) > 0) print line; print ""; skip = 1; next }
      /^<!-- \/bench-net -->$/ { skip = 0 }
      !skip' README.md >README.md.tmp && mv README.md.tmp README.md
    echo "bench.sh: README.md's performance section now holds $table"
  else
    echo "bench.sh: README.md has no <!-- bench-net --> … <!-- /bench-net --> markers; the table is in $table" >&2
  fi
fi
