#!/usr/bin/env bash
# The Pulumi Kubernetes resource plugin (pulumi-resource-kubernetes), built from Go modules.
# Opt-in (`make k8s-plugin`): only a real `pulumi up` of the kubernetes platform needs it;
# the test suite runs the program under mocks and against a real API server without it.
#
#   1. $CONVEYOR_K8S_PLUGIN (a binary) is used as is;
#   2. else a cached build in $CONVEYOR_TOOLS_DIR/pulumi-kubernetes-v<sdk version>;
#   3. else it is built (~15 min and ~5 GB of build cache on 2 cores, once). The Go module proxy
#      serves one provider version, github.com/pulumi/pulumi-kubernetes/provider/v4 at
#      $CONVEYOR_K8S_PROVIDER_MODULE_VERSION (a Jan 2026 commit, older than the Python SDK); it
#      covers every API kind Conveyor uses. Its command embeds generated schema files that
#      are not in the module zip, so the command package is copied into a wrapper module and
#      the files are generated there. The binary is stamped with the SDK's version, which is
#      what Pulumi looks for.
# Prints the plugin binary's path on its last line. Install it into a project's Pulumi home
# with: pulumi plugin install resource kubernetes v<version> --file <path>
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
tools=${CONVEYOR_TOOLS_DIR:-$HOME/.cache/conveyor/tools}
module_version=${CONVEYOR_K8S_PROVIDER_MODULE_VERSION:-v4.0.0-20260115033456-f47bc2d6f199}
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pulumi_kubernetes"))')
dest=$tools/pulumi-kubernetes-v$version
say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
# quiet on success; on failure the step's own output says why
quiet() { local log; log=$(mktemp); if ! "$@" >"$log" 2>&1; then tail -n 40 "$log" >&2; rm -f "$log"; echo "error: $* failed" >&2; return 1; fi; rm -f "$log"; }

if [ -n "${CONVEYOR_K8S_PLUGIN:-}" ] && [ -x "$CONVEYOR_K8S_PLUGIN" ]; then
  say "using the Kubernetes plugin $CONVEYOR_K8S_PLUGIN"; echo "$CONVEYOR_K8S_PLUGIN"; exit 0
fi
if [ -x "$dest/pulumi-resource-kubernetes" ] && [ "$(cat "$dest/module-version" 2>/dev/null)" = "$module_version" ]; then
  say "pulumi-resource-kubernetes v$version: cached build in $dest"; echo "$dest/pulumi-resource-kubernetes"; exit 0
fi
command -v go >/dev/null || { echo "error: building the Kubernetes plugin needs Go >= 1.24" >&2; exit 1; }
say "building pulumi-resource-kubernetes ($module_version, as v$version) from Go modules into $dest (one-time, ~15 min)"
export GOFLAGS=-mod=mod
src=$tools/src/pulumi-kubernetes-$module_version
cmd=$src/cmd/pulumi-resource-kubernetes
mkdir -p "$cmd" "$dest"
cd "$src"
[ -f go.mod ] || quiet go mod init conveyor.local/pulumi-kubernetes
quiet go get "github.com/pulumi/pulumi-kubernetes/provider/v4@$module_version"
upstream=$(go list -m -f '{{.Dir}}' "github.com/pulumi/pulumi-kubernetes/provider/v4")
for f in main.go generate.go schema.json terraform-mapping.json; do
  cp "$upstream/cmd/pulumi-resource-kubernetes/$f" "$cmd/$f"
done
chmod u+w "$cmd"/*
quiet go mod tidy
(cd "$cmd" && VERSION=$version go run generate.go)   # writes the *-embed.json files main.go embeds
go build -trimpath -o "$dest/pulumi-resource-kubernetes.tmp" \
  -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$version" \
  ./cmd/pulumi-resource-kubernetes
mv "$dest/pulumi-resource-kubernetes.tmp" "$dest/pulumi-resource-kubernetes"
echo "$module_version" > "$dest/module-version"
say "built $dest/pulumi-resource-kubernetes"
echo "$dest/pulumi-resource-kubernetes"
