#!/bin/sh
# install-s3-servers.sh builds the real S3 servers the demo and the tests run
# against into ${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}: versitygw
# (the demo's and the tests') and MinIO (the tests').
#
# Each binary is built once with `go install`; a stamp file NAME.version next
# to it records the module version, so running the script again is a no-op
# unless a version below changes. Builds run one after another (MinIO alone
# takes several minutes on two cores). A build says up front what it builds
# and counts the packages it compiles as it goes.
#
# Usage: scripts/install-s3-servers.sh [versitygw] [minio]   (default: both)
set -eu

TOOLS=${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}

VERSITYGW_PKG=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
MINIO_PKG=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

mkdir -p "$TOOLS"

# install NAME PKG VERSION ABOUT builds PKG@VERSION into $TOOLS/NAME unless
# the stamp already records VERSION; ABOUT says what the first build costs.
install() {
	name=$1 pkg=$2 version=$3 about=$4
	stamp=$TOOLS/$name.version
	if [ -x "$TOOLS/$name" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
		echo "$name $version already installed in $TOOLS"
		return 0
	fi
	echo "building the S3 server $name $version into $TOOLS, once: $about"
	rm -f "$stamp"
	# Build outside any module so the project's go.mod does not interfere.
	# go prints "go: downloading" per module and, with -v, each package it
	# compiles: counted here, a line every 25 of each, so a long build shows
	# how far it is without screenfuls of names.
	rc=$TOOLS/.$name.rc
	{
		status=0
		(cd / && GOBIN=$TOOLS GOFLAGS=-buildvcs=false go install -v "$pkg@$version" 2>&1) || status=$?
		echo "$status" >"$rc"
	} | awk -v name="$name" '
		/^go: downloading / { d++; if (d % 25 == 1) { printf "  %s: downloading Go modules: %d (%s %s)\n", name, d, $3, $4; fflush() }; next }
		/^go: |^#|: / { print; fflush(); next }
		{ n++; last = $0 }
		n % 25 == 0 { printf "  %s: %d packages compiled (%s)\n", name, n, last; fflush() }
		END { if (d) printf "  %s: %d Go modules downloaded\n", name, d; if (n) printf "  %s: %d packages compiled\n", name, n }'
	if [ "$(cat "$rc")" != 0 ]; then
		rm -f "$rc"
		echo "building $name failed (see above)" >&2
		exit 1
	fi
	rm -f "$rc"
	echo "$version" >"$stamp"
}

if [ $# -eq 0 ]; then
	set -- versitygw minio
fi
for what in "$@"; do
	case $what in
	versitygw) install versitygw "$VERSITYGW_PKG" "$VERSITYGW_VERSION" \
		"downloads ~110 MB of Go modules and compiles ~590 packages (~5 minutes on 2 cores)" ;;
	minio) install minio "$MINIO_PKG" "$MINIO_VERSION" \
		"downloads a few hundred MB of Go modules and compiles ~1300 packages (~10 minutes on 2 cores)" ;;
	*)
		echo "unknown server $what (want versitygw or minio)" >&2
		exit 2
		;;
	esac
done
