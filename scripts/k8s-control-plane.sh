#!/usr/bin/env bash
# A Kubernetes control plane for the tests: etcd, kube-apiserver and kube-controller-manager,
# no kubelet (pods are created, never run). The kubernetes platform's tests apply what
# Conveyor renders to a real API server: schema, admission, RBAC and controllers are real.
#
#   1. $CONVEYOR_K8S_BIN_DIR holding the three binaries is used as is (envtest's assets lack
#      kube-controller-manager, so they do not qualify);
#   2. else a cached build in $CONVEYOR_TOOLS_DIR/k8s-v<version> (default ~/.cache/conveyor/tools);
#   3. else they are built from Go modules (~7 min on 2 cores, one time): etcd from a wrapper
#      module around etcdmain; the Kubernetes commands from a wrapper module requiring
#      k8s.io/kubernetes with every staging module (v0.0.0 + local replace upstream) replaced by
#      its published v0.<minor>.<patch>, which is why `go install ...@v1.x` cannot work.
# Prints the directory holding the binaries on its last line.
set -euo pipefail

k8s_version=${CONVEYOR_K8S_VERSION:-1.34.4}
etcd_version=${CONVEYOR_ETCD_VERSION:-3.6.16}
tools=${CONVEYOR_TOOLS_DIR:-$HOME/.cache/conveyor/tools}
dest=$tools/k8s-v$k8s_version
say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
# quiet on success; on failure the step's own output says why
quiet() { local log; log=$(mktemp); if ! "$@" >"$log" 2>&1; then tail -n 40 "$log" >&2; rm -f "$log"; echo "error: $* failed" >&2; return 1; fi; rm -f "$log"; }
have_all() { [ -x "$1/etcd" ] && [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ]; }

for ambient in "${CONVEYOR_K8S_BIN_DIR:-}"; do
  if [ -n "$ambient" ] && have_all "$ambient"; then
    say "using the Kubernetes control plane in $ambient"
    echo "$ambient"; exit 0
  fi
done
if have_all "$dest"; then
  say "Kubernetes control plane v$k8s_version: cached build in $dest"
  echo "$dest"; exit 0
fi

command -v go >/dev/null || { echo "error: no Go toolchain to build the test control plane (install Go >= 1.24)" >&2; exit 1; }
say "building etcd v$etcd_version + kube-apiserver/kube-controller-manager v$k8s_version from Go modules into $dest (one-time, ~7 min)"
export GOFLAGS=-mod=mod
mkdir -p "$dest"

src=$tools/src/etcd-v$etcd_version
mkdir -p "$src" && cd "$src"
[ -f go.mod ] || quiet go mod init conveyor.local/etcd
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
quiet go get "go.etcd.io/etcd/server/v3@v$etcd_version"
quiet go mod tidy
go build -trimpath -ldflags "-s -w" -o "$dest/etcd.tmp" . && mv "$dest/etcd.tmp" "$dest/etcd"

src=$tools/src/k8s-v$k8s_version
mkdir -p "$src" && cd "$src"
minor=${k8s_version#*.}; minor=${minor%%.*}
staging=v0.${k8s_version#*.}
upstream=$(go mod download -json "k8s.io/kubernetes@v$k8s_version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "module conveyor.local/kubernetes"; echo
  echo "go $(go env GOVERSION | sed 's/^go//')"; echo
  echo "godebug default=go1.24"; echo
  echo "require k8s.io/kubernetes v$k8s_version"; echo
  echo "replace ("
  grep -E '^\s*k8s.io/[a-z-]+ v0.0.0$' "$upstream" | awk -v v="$staging" '{printf "\t%s => %s %s\n", $1, $1, v}'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
quiet go mod tidy
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=v$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
for cmd in kube-apiserver kube-controller-manager; do
  go build -trimpath -ldflags "$ld" -o "$dest/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$dest/$cmd.tmp" "$dest/$cmd"
done
say "built $("$dest/kube-apiserver" --version)"
echo "$dest"
