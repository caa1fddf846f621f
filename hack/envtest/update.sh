#!/usr/bin/env bash
# Regenerates the wrapper modules for another Kubernetes / etcd version:
#   hack/envtest/update.sh v1.33.13 v3.5.21
# k8s.io/kubernetes requires its staging modules at v0.0.0 and redirects them with replace
# directives that Go ignores in dependencies, so the wrapper replaces each of them with the
# matching published v0.Y.Z. Then update KUBE_VERSION and ETCD_VERSION in build.sh.
set -euo pipefail
kube=${1:?usage: update.sh KUBE_VERSION ETCD_VERSION}
etcd=${2:?usage: update.sh KUBE_VERSION ETCD_VERSION}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local
staging="v0.${kube#v1.}"

gomod=$(go mod download -json "k8s.io/kubernetes@$kube" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
cd "$here/kube"
printf 'module unyo.dev/hack/envtest/kube\n\ngo 1.24.0\n' > go.mod
rm -f go.sum
go mod edit -require="k8s.io/kubernetes@$kube"
for m in $(grep -E '^\s+k8s.io/\S+ v0.0.0$' "$gomod" | awk '{print $1}'); do
  go mod edit -replace="$m=$m@$staging"
done
go mod tidy

cd "$here/etcd"
printf 'module unyo.dev/hack/envtest/etcd\n\ngo 1.24.0\n' > go.mod
rm -f go.sum
go mod edit -require="go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
echo "updated; now set KUBE_VERSION=$kube and ETCD_VERSION=$etcd in $here/build.sh" >&2
