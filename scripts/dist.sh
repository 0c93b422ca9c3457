#!/usr/bin/env bash
# Builds the release artifacts into dist/: a static Linux amd64 binary with
# version information, and a tarball with the binary, the systemd unit,
# the example configuration and the docs. With nfpm installed (make dist
# installs it with go install), also a .deb package.
#
# Usage: scripts/dist.sh VERSION COMMIT
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly VERSION=${1:?usage: dist.sh VERSION COMMIT}
readonly COMMIT=${2:?usage: dist.sh VERSION COMMIT}
readonly NAME=agentd-$VERSION-linux-amd64
readonly DIST=$REPO_ROOT/dist
readonly STAGE=$DIST/$NAME
readonly NFPM=${NFPM:-$REPO_ROOT/bin/nfpm}

cd "$REPO_ROOT"
rm -rf "$STAGE"
mkdir -p "$STAGE"

echo "dist: building $NAME" >&2
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
	-ldflags "-s -w -X github.com/contactcenter/agentd/daemon.version=$VERSION -X github.com/contactcenter/agentd/daemon.commit=$COMMIT" \
	-o "$STAGE/agentd" ./cmd/agentd

cp -r systemd configs "$STAGE/"
mkdir -p "$STAGE/docs"
cp -r docs/. "$STAGE/docs/"
cp README.md README.es.md "$STAGE/"
tar -C "$DIST" -czf "$DIST/$NAME.tar.gz" "$NAME"
echo "dist: wrote dist/$NAME.tar.gz" >&2

if [[ -x $NFPM ]]; then
	# nfpm wants a semantic version; a git describe such as 1a2b3c becomes 0.0.0~git1a2b3c.
	deb_version=$VERSION
	[[ $deb_version =~ ^v?[0-9] ]] || deb_version=0.0.0~git$VERSION
	# nfpm does not expand variables in paths, so fill in the template.
	sed -e "s|\${AGENTD_STAGE}|$STAGE|g" -e "s|\${AGENTD_VERSION}|${deb_version#v}|g" \
		packaging/nfpm.yaml >"$DIST/nfpm.yaml"
	"$NFPM" package --config "$DIST/nfpm.yaml" --packager deb --target "$DIST/"
	echo "dist: wrote the .deb package into dist/" >&2
else
	echo "dist: $NFPM not found, no .deb built (make dist installs it)" >&2
fi
