#!/usr/bin/env bash
# The unyo demo on a fresh machine: a real local control plane with the sample fleet of a
# prefectural union (namespace mie).
#
#   hack/demo.sh        start (or restart) the demo and show the fleet
#   hack/demo.sh down   stop the demo's control plane
#
# The control plane keeps running after the script ends so that you can explore it with the
# `export KUBECONFIG=...` line it prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

demo_dir="${UNYO_DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/demo}"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "${1:-}" = "down" ]; then
  hack/control-plane.sh down --dir "$demo_dir"
  exit 0
fi

step "building the control plane (first run only) and the unyo binaries"
bin=$(hack/envtest/build.sh)
cargo build -q --bin unyo --bin unyo-controller --bin unyo-agent
unyo=target/debug/unyo
kubectl() { "$bin/kubectl" "$@"; }

step "starting etcd and kube-apiserver on 127.0.0.1"
if [ -e "$demo_dir/apiserver.pid" ]; then
  hack/control-plane.sh down --dir "$demo_dir"
fi
export_line=$(hack/control-plane.sh up --dir "$demo_dir" | tail -1)
eval "$export_line"

step "installing the unyo.dev CRDs (unyo crds | kubectl apply --server-side)"
"$unyo" crds | kubectl apply --server-side --field-manager=unyo-demo -f -
kubectl wait --for=condition=Established --timeout=60s -f manifests/crds >/dev/null

step "checking the sample fleet offline (unyo check), as a pull-request check would"
"$unyo" check -q manifests/samples

step "applying the sample fleet (kubectl apply --server-side -k manifests/samples)"
kubectl apply --server-side --field-manager=unyo-demo -f manifests/samples/namespace.yaml >/dev/null
kubectl apply --server-side --field-manager=unyo-demo -k manifests/samples

step "kubectl get unyo -n mie"
kubectl get unyo -n mie

step "kubectl explain backupplan.spec.retention"
kubectl explain backupplan.spec.retention

step "bad input is refused at admission, naming the field and the reason"
kubectl apply --server-side --dry-run=server -f - <<'YAML' 2>&1 || true
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: broken, namespace: mie}
spec:
  sources: [{name: db, paths: [/var/lib/postgresql]}]
  repositories: {primary: {location: /backup/a, passwordFile: /etc/unyo/a.pass}}
  rules: [{name: daily, type: Differential, schedule: {calendar: mie-operations, at: "19:30", cron: "30 19 * * *"}}]
  retention: {generations: 0}
  media: {informationClass: ClassI}
YAML

cat <<MSG

The demo control plane is running. To explore it:
  $export_line
  export PATH=$bin:\$PATH
  kubectl get servers -n mie -o wide
  kubectl explain server.spec.hardware
Stop it with: hack/demo.sh down
MSG
