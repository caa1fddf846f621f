#!/usr/bin/env bash
# The controller at fleet scale, against the real local control plane:
#   hack/bench-controller.sh [N ...]        (default: 1000 5000 10000)
# For each N, a fresh etcd + kube-apiserver; N Servers in one namespace, each with a Lease that
# a simulated agent renews every 60 s; the release unyo-controller with the RBAC it ships with.
# Measured per N (tests/src/bin/bench-controller.rs): steady state for STEADY_SECS (180) —
# the controller's requests by verb from the API server's own metrics (API Priority and
# Fairness counts of FlowSchemas matching only the controller's ServiceAccount), Server writes,
# controller CPU; a burst in which every Server drifts — time until every ChangeRecord exists,
# p50/p99 from the status write to the record, records/s beside the rate at which the same
# client creates ChangeRecords directly on the same API server (the limit); peak RSS of the
# controller and kube-apiserver, kube-apiserver CPU. Prints one table.
# PACKAGES (300) sets the installed packages each simulated host reports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 5000 10000)
steady=${STEADY_SECS:-180}
packages=${PACKAGES:-300}

cargo build -q --release --locked -p unyo-controller -p unyo-tests --bin unyo-controller --bin bench-controller
bin=$(hack/envtest/build.sh)
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d "${TMPDIR:-/tmp}/unyo-bench.XXXXXX")
cp_dir=""
cleanup() {
  [ -n "$cp_dir" ] && hack/control-plane.sh down --dir "$cp_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for n in "${sizes[@]}"; do
  cp_dir="$work/cp-$n"
  kubeconfig=$(hack/control-plane.sh up --dir "$cp_dir" --owner-pid $$ | tail -1 | sed 's/^export KUBECONFIG=//')
  "$target/release/bench-controller" --kubeconfig "$kubeconfig" --kubectl "$bin/kubectl" \
    --controller "$target/release/unyo-controller" --apiserver-pid "$(cat "$cp_dir/apiserver.pid")" \
    --servers "$n" --steady-secs "$steady" --packages "$packages" --json "$work/row-$n.json" >/dev/null
  hack/control-plane.sh down --dir "$cp_dir" >/dev/null 2>&1 || true
  cp_dir=""
done

python3 - "$work" "${sizes[@]}" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
rows = [json.load(open(f"{work}/row-{n}.json")) for n in sizes]
lines = [
    ("Servers (packages each)", lambda r: f"{r['servers']:,} ({r['packages_per_server']})", ""),
    ("initial reconcile until all in sync and connected", lambda r: f"{r['initial_reconcile_secs']:.1f} s", ""),
    ("steady: controller requests/s beyond watches", lambda r: f"{r['steady_requests_per_sec_beyond_watches']:.3f}", "< 1"),
    ("steady: LIST / GET / writes / WATCH in the window", lambda r: f"{r['steady_lists']:.0f} / {r['steady_gets']:.0f} / {r['steady_writes']:.0f} / {r['steady_watches']:.0f}", "LIST 0"),
    ("steady: Server writes", lambda r: f"{r['steady_server_writes']:.0f}", "0"),
    ("steady: controller CPU", lambda r: f"{r['steady_controller_cpu_percent']:.1f} %", ""),
    ("burst: until every ChangeRecord exists", lambda r: f"{r['burst_secs_until_all_records']:.1f} s", ""),
    ("burst: drift write -> record p50 / p99", lambda r: f"{r['burst_p50_secs']:.2f} / {r['burst_p99_secs']:.2f} s", "p99 < 2 s"),
    ("burst: records/s (direct creates/s, the limit)", lambda r: f"{r['burst_records_per_sec']:.0f} ({r['direct_creates_per_sec']:.0f}) = {100*r['burst_records_per_sec']/r['direct_creates_per_sec']:.0f} %", ">= 50 %"),
    ("burst: the agents' drift writes/s (the input)", lambda r: f"{r['burst_drift_writes_per_sec']:.0f}", ""),
    ("burst: until every status is written", lambda r: f"{r['burst_settled_secs']:.1f} s", ""),
    ("burst: controller CPU until every record exists", lambda r: f"{r['burst_controller_cpu_percent']:.0f} %", ""),
    ("burst: controller requests per drifted Server", lambda r: f"{r['burst_controller_requests']/r['servers']:.2f}", ""),
    ("controller RSS in steady state / peak", lambda r: f"{r['controller_rss_steady_mb']:.0f} / {r['controller_peak_rss_mb']:.0f} MB", "peak < 200 MB at 10,000"),
    ("kube-apiserver peak RSS / CPU", lambda r: f"{r['apiserver_peak_rss_mb']:.0f} MB / {r['apiserver_cpu_percent']:.0f} %", ""),
]
head = "| measure | " + " | ".join(f"N = {int(n):,}" for n in sizes) + " | target |"
print(head)
print("|" + "---|" * (len(sizes) + 2))
for name, fmt, target in lines:
    print(f"| {name} | " + " | ".join(fmt(r) for r in rows) + f" | {target} |")
print(f"\nsteady window {rows[0]['steady_secs']:.0f} s; {len(sizes)} fresh control plane(s); 2 cores")
PY
