#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their Go modules (the wrapper modules beside this
# script) into a cache directory keyed by version, and prints that directory. A second run finds the
# binaries and returns at once.
#
#   hack/envtest/build.sh            # build if missing, print the bin dir
#   UNYO_ENVTEST_CACHE=/some/dir ... # cache root (default ~/.cache/unyo/envtest)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBE_VERSION=v1.33.13
ETCD_VERSION=v3.5.21
cache_root=${UNYO_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/envtest}
bin="$cache_root/${KUBE_VERSION}-${ETCD_VERSION}"

log() { printf 'envtest: %s\n' "$*" >&2; }

need_build=0
for b in kube-apiserver kubectl etcd; do
  [ -x "$bin/$b" ] || need_build=1
done

if [ "$need_build" = 1 ]; then
  command -v go >/dev/null || { log "go is not installed; it is needed to build the control plane"; exit 1; }
  mkdir -p "$bin"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  start=$(date +%s)
  if [ ! -x "$bin/etcd" ]; then
    log "building etcd $ETCD_VERSION (first run only)"
    (cd "$here/etcd" && go build -trimpath -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3) && mv "$bin/etcd.tmp" "$bin/etcd"
  fi
  for cmd in kube-apiserver kubectl; do
    if [ ! -x "$bin/$cmd" ]; then
      log "building $cmd $KUBE_VERSION (first run only; several minutes on 2 cores)"
      (cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd") \
        && mv "$bin/$cmd.tmp" "$bin/$cmd"
    fi
  done
  log "built in $(( $(date +%s) - start ))s into $bin"
fi

echo "$bin"
