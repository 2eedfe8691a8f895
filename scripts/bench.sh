#!/usr/bin/env bash
# make bench: nixbucket against Nix on the same paths, in one run, as ratios.
# Corpus: ../shared/bench/corpus.nix (medium 216 MB, dag 2001 paths, big 1 GiB;
# NIXBUCKET_BENCH_FULL=1 adds toolchain 740 MB). -run TestBench also runs
# TestBenchLifecycle: stats and gc --dry-run on a synthetic 50 000-object bucket.
set -euo pipefail
cd "$(dirname "$0")/.."
export NIXBUCKET_BIN="$PWD/bin/nixbucket"
export NIXBUCKET_CORPUS="${NIXBUCKET_CORPUS:-$PWD/../shared/bench/corpus.nix}"
go test -tags bench -count=1 -timeout 60m -run TestBench -v ./internal/bench/ 2>&1 | tee bench.log | grep -v '^=== RUN'
