#!/usr/bin/env bash
# Builds the release artifacts into dist/: a static Linux amd64 binary with
# version information, and a tarball with the binary, the systemd unit,
# the example configuration and the docs. With nfpm installed (make dist
# installs it with go install, which needs the network), also a .deb
# package.
#
# Usage: scripts/dist.sh VERSION COMMIT
#
# The Debian version is VERSION without its leading v when VERSION is a
# release tag such as v1.2.3. Any other VERSION, such as the output of git
# describe between tags, gives 0.0.0~git<UTC build time YYYYMMDDHHMM>.<COMMIT>,
# so a later build sorts after an earlier one, and every snapshot sorts
# before the first release.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly VERSION=${1:?usage: dist.sh VERSION COMMIT}
readonly COMMIT=${2:?usage: dist.sh VERSION COMMIT}
readonly NAME=agentd-$VERSION-linux-amd64
readonly DIST=$REPO_ROOT/dist
readonly STAGE=$DIST/$NAME
readonly NFPM=${NFPM:-$REPO_ROOT/bin/nfpm}

# debian_version prints the package version for VERSION and COMMIT.
debian_version() {
	if [[ $VERSION =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
		echo "${BASH_REMATCH[1]}"
		return
	fi
	# A Debian version allows only letters, digits and . + ~ - in it.
	local commit
	commit=$(tr -c 'A-Za-z0-9.+~-' '.' <<<"$COMMIT" | sed 's/\.*$//')
	echo "0.0.0~git$(date -u +%Y%m%d%H%M).${commit:-unknown}"
}

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

if [[ ! -x $NFPM ]]; then
	echo "dist: nfpm not found at $NFPM, so no .deb package was built." >&2
	echo "dist: run make dist, which installs nfpm with go install (this needs the network), or set NFPM to an nfpm binary." >&2
	exit 0
fi
deb_version=$(debian_version)
# nfpm does not expand variables in paths, so fill in the template.
sed -e "s|\${AGENTD_STAGE}|$STAGE|g" -e "s|\${AGENTD_VERSION}|$deb_version|g" \
	packaging/nfpm.yaml >"$DIST/nfpm.yaml"
"$NFPM" package --config "$DIST/nfpm.yaml" --packager deb --target "$DIST/"
echo "dist: wrote the .deb package of version $deb_version into dist/" >&2
