#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) from Go modules into the
# shared tools cache, once per version. Prints the binary's path on stdout; all
# progress goes to stderr. A second run is instant: it only checks the file.
#
#   scripts/build-actionlint.sh            # build if missing, print the path
#   ACTIONLINT_VERSION=v1.7.11 scripts/build-actionlint.sh
#
# Why from Go modules: the machines this project targets reach package registries
# only, so a release binary download is not an option; `go install` is.
set -euo pipefail

version="${ACTIONLINT_VERSION:-v1.7.12}"
tools_dir="${CONVEYOR_TOOLS_DIR:-$HOME/.cache/conveyor/tools}"
dest_dir="$tools_dir/actionlint/$version"
binary="$dest_dir/actionlint"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-actionlint: 'go' is not on PATH; install Go >= 1.25 to build actionlint $version" >&2
  exit 127
fi

echo "build-actionlint: building github.com/rhysd/actionlint/cmd/actionlint@$version (one-time, ~15s)" >&2
mkdir -p "$dest_dir"
# Build into a private temp dir and rename into place, so two concurrent builds
# (parallel test workers, two checkouts) never leave a half-written binary.
staging="$(mktemp -d "$dest_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if ! GOBIN="$staging" GOFLAGS="${GOFLAGS:--trimpath}" \
    go install "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2; then
  echo "build-actionlint: 'go install' failed; is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?" >&2
  exit 1
fi
mv -f "$staging/actionlint" "$binary"
echo "build-actionlint: built $binary" >&2
echo "$binary"
