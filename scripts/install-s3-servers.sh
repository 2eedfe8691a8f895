#!/bin/sh
# install-s3-servers.sh builds the real S3 servers the tests run against
# (versitygw and MinIO) into ${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}.
#
# Each binary is built once with `go install`; a stamp file NAME.version next
# to it records the module version, so running the script again is a no-op
# unless a version below changes. Builds run one after another (MinIO alone
# takes several minutes on two cores).
#
# Usage: scripts/install-s3-servers.sh [versitygw] [minio]   (default: both)
set -eu

TOOLS=${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}

VERSITYGW_PKG=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
MINIO_PKG=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

mkdir -p "$TOOLS"

# install NAME PKG VERSION builds PKG@VERSION into $TOOLS/NAME unless the
# stamp already records VERSION.
install() {
	name=$1 pkg=$2 version=$3
	stamp=$TOOLS/$name.version
	if [ -x "$TOOLS/$name" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
		echo "$name $version already installed in $TOOLS"
		return 0
	fi
	echo "building $name $version into $TOOLS"
	rm -f "$stamp"
	# Build outside any module so the project's go.mod does not interfere.
	(cd / && GOBIN=$TOOLS GOFLAGS=-buildvcs=false go install "$pkg@$version")
	echo "$version" >"$stamp"
}

if [ $# -eq 0 ]; then
	set -- versitygw minio
fi
for what in "$@"; do
	case $what in
	versitygw) install versitygw "$VERSITYGW_PKG" "$VERSITYGW_VERSION" ;;
	minio) install minio "$MINIO_PKG" "$MINIO_VERSION" ;;
	*)
		echo "unknown server $what (want versitygw or minio)" >&2
		exit 2
		;;
	esac
done
