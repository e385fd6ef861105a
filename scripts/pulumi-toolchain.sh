#!/usr/bin/env bash
# Make a `pulumi` CLI available offline, at the version of the installed Python SDK.
#
#   1. $CONVEYOR_PULUMI_BIN or a `pulumi` already on PATH (outside .venv) is used as is;
#   2. else a cached build in $CONVEYOR_TOOLS_DIR (default ~/.cache/conveyor/tools);
#   3. else it is built from Go modules: a wrapper module requiring pkg/v3 and sdk/v3 at
#      the same release (pkg's go.mod has replace directives, so `go install pkg@v` fails),
#      with the version stamped by ldflags as the release does.
# The Python language host and dynamic-provider plugin are console scripts of this
# package (conveyor/plugins.py); `.venv/bin/pulumi` (conveyor.toolchain) execs the CLI
# with the project's offline settings.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
tools=${CONVEYOR_TOOLS_DIR:-$HOME/.cache/conveyor/tools}
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pulumi"))')
dest=$tools/pulumi-v$version
say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

ambient=""
if [ -n "${CONVEYOR_PULUMI_BIN:-}" ]; then
  ambient=$CONVEYOR_PULUMI_BIN
else
  # Any pulumi on PATH that is not our own wrapper in the venv.
  while IFS= read -r candidate; do
    case "$candidate" in "$venv"/*) continue ;; esac
    ambient=$candidate; break
  done < <(type -ap pulumi 2>/dev/null || true)
fi

if [ -n "$ambient" ]; then
  say "using pulumi already installed: $ambient ($("$ambient" version 2>/dev/null || echo '?'))"
  printf '%s\n' "$ambient" > "$venv/pulumi-bin"
  exit 0
fi

# Pulumi looks for its bundled plugins (the language host) next to its own executable, so the
# venv gets a link to the cached build with our Python plugins beside it.
install_into_venv() {
  local bindir=$venv/pulumi/bin
  mkdir -p "$bindir"
  rm -f "$bindir/pulumi"
  ln "$dest/pulumi" "$bindir/pulumi" 2>/dev/null || cp "$dest/pulumi" "$bindir/pulumi"
  for plugin in pulumi-language-python pulumi-resource-pulumi-python; do
    ln -sf "../../bin/$plugin" "$bindir/$plugin"
  done
  printf '%s\n' "$bindir/pulumi" > "$venv/pulumi-bin"
}

if [ -x "$dest/pulumi" ] && "$dest/pulumi" version >/dev/null 2>&1; then
  say "pulumi v$version: cached build in $dest"
  install_into_venv
  exit 0
fi

command -v go >/dev/null || { echo "error: no pulumi on PATH and no Go toolchain to build it (install Go >= 1.24)" >&2; exit 1; }
say "building pulumi v$version from Go modules into $dest (one-time, ~10 min on 2 cores)"
src=$tools/src/pulumi-v$version
mkdir -p "$src" "$dest"
cd "$src"
if [ ! -f go.mod ]; then
  go mod init conveyor.local/pulumi-cli >/dev/null 2>&1
fi
export GOFLAGS=-mod=mod
go get -tool "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$version" "github.com/pulumi/pulumi/sdk/v3@v$version"
go build -trimpath -o "$dest/pulumi.tmp" \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv "$dest/pulumi.tmp" "$dest/pulumi"
install_into_venv
say "built $("$dest/pulumi" version)"
