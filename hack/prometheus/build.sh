#!/usr/bin/env bash
# Builds Prometheus and promtool from their Go module (the wrapper module beside this script) into a
# cache directory keyed by version, and prints that directory. A second run finds the binaries and
# returns at once. The web UI's assets are not built (the build tag builtinassets is not set): the
# tests and the demo use the HTTP API only.
#
#   hack/prometheus/build.sh            # build if missing, print the bin dir
#   UNYO_PROMETHEUS_CACHE=/some/dir ... # cache root (default ~/.cache/unyo/prometheus)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" { print $3 }' "$here/go.mod")
cache_root=${UNYO_PROMETHEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/prometheus}
bin="$cache_root/$VERSION"

log() { printf 'prometheus: %s\n' "$*" >&2; }

for cmd in prometheus promtool; do
  [ -x "$bin/$cmd" ] && continue
  command -v go >/dev/null || { log "go is not installed; it is needed to build $cmd"; exit 1; }
  mkdir -p "$bin"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  start=$(date +%s)
  log "building $cmd $VERSION (first run only; a few minutes on 2 cores)"
  ldflags="-X github.com/prometheus/common/version.Version=${VERSION#v}"
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" \
    "github.com/prometheus/prometheus/cmd/$cmd") && mv "$bin/$cmd.tmp" "$bin/$cmd"
  log "built $cmd in $(( $(date +%s) - start ))s"
done

echo "$bin"
