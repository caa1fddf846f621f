#!/usr/bin/env bash
# Builds a Go command from one of the wrapper modules under hack/ (helm, kstatus, oci) into a
# cache keyed by the module's content (go.mod, go.sum and its own sources), and prints the path of
# the binary. A second run with the same content returns at once.
#
#   hack/go-tool.sh helm    helm.sh/helm/v3/cmd/helm    # → …/helm
#   hack/go-tool.sh kstatus .                           # a module's own main package
#   hack/go-tool.sh oci github.com/google/go-containerregistry/cmd/crane crane
#   UNYO_GO_TOOLS_CACHE=/some/dir                       # cache root (default ~/.cache/unyo/go-tools)
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 MODULE-DIR-UNDER-hack PACKAGE [NAME]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module="$here/$1"
name=${3:-$1}
key=$( (cd "$module" && cat go.mod go.sum $(ls ./*.go 2>/dev/null); cat ldflags 2>/dev/null || true; echo "$2") | sha256sum | cut -c1-16)
bin="${UNYO_GO_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/go-tools}/$name-$key/$name"

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "$name: go is not installed; it is needed to build $name" >&2; exit 1; }
  mkdir -p "$(dirname "$bin")"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  start=$(date +%s)
  echo "$name: building $2 (first run only)" >&2
  ldflags=$(cat "$module/ldflags" 2>/dev/null || true)  # e.g. a version stamp
  (cd "$module" && go build -trimpath -ldflags "$ldflags" -o "$bin.tmp.$$" "$2") && mv "$bin.tmp.$$" "$bin"
  echo "$name: built in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
