#!/usr/bin/env bash
# Building a month's report at fleet scale, against the real local control plane:
#   hack/bench-report.sh [N ...]        (default: 10 1000)
# For each N, a fresh etcd + kube-apiserver with N Servers (facts with 300 packages, backups,
# antivirus and patch status), N/2 Incidents and N ChangeRecords in December 2025
# (tests/src/bin/bench-report.rs); the release `unyo report monthly` is timed for JSON, PDF and
# Excel, beside the floor: one LIST per kind it reads, from the same API server (the limit no
# report can beat), and the statistics section with every measurement and chart of N servers is
# laid out as PDF in process (the command line reads statistics from Prometheus only). Needs the PDF font (fonts-noto-cjk) and pdfinfo (poppler-utils).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 1000)
for tool in pdfinfo; do
  command -v "$tool" >/dev/null || { echo "bench-report: $tool is missing (apt-get install poppler-utils)" >&2; exit 1; }
done
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || { echo "bench-report: install fonts-noto-cjk" >&2; exit 1; }

cargo build -q --release --locked -p unyo-cli -p unyo-tests --bin unyo --bin bench-report
hack/envtest/build.sh >/dev/null
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d "${TMPDIR:-/tmp}/unyo-bench-report.XXXXXX")
cp_dir=""
cleanup() {
  [ -n "$cp_dir" ] && hack/control-plane.sh down --dir "$cp_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for n in "${sizes[@]}"; do
  cp_dir="$work/cp-$n"
  kubeconfig=$(hack/control-plane.sh up --dir "$cp_dir" --owner-pid $$ | tail -1 | sed 's/^export KUBECONFIG=//')
  "$target/release/unyo" crds | "$(hack/envtest/build.sh)/kubectl" --kubeconfig "$kubeconfig" apply --server-side -f - >/dev/null
  "$target/release/bench-report" --kubeconfig "$kubeconfig" --unyo "$target/release/unyo" \
    --servers "$n" --json "$work/row-$n.json"
  hack/control-plane.sh down --dir "$cp_dir" >/dev/null 2>&1 || true
  cp_dir=""
done

python3 - "$work" "${sizes[@]}" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
rows = [json.load(open(f"{work}/row-{n}.json")) for n in sizes]
lines = [
    ("Servers / Incidents / ChangeRecords", lambda r: f"{r['servers']:,} / {r['servers']//2:,} / {r['servers']:,}"),
    ("reading them: one LIST per kind (the floor)", lambda r: f"{r['list_floor_secs']:.2f} s"),
    ("report as JSON", lambda r: f"{r['json_secs']:.2f} s ({r['json_secs']/r['list_floor_secs']:.1f}x floor)"),
    ("report as PDF (pages, size)", lambda r: f"{r['pdf_secs']:.2f} s ({r['pdf_pages']} pages, {r['pdf_bytes']/1e6:.1f} MB)"),
    ("report as Excel (size)", lambda r: f"{r['xlsx_secs']:.2f} s ({r['xlsx_bytes']/1e6:.2f} MB)"),
    ("statistics section as PDF: 8 measurements and charts per server (pages)", lambda r: f"{r['statistics_pdf_secs']:.2f} s ({r['statistics_pdf_pages']} pages)"),
]
print("| measure | " + " | ".join(f"N = {int(n):,}" for n in sizes) + " |")
print("|" + "---|" * (len(sizes) + 1))
for name, fmt in lines:
    print(f"| {name} | " + " | ".join(fmt(r) for r in rows) + " |")
print("\nlimit: each format within 10 minutes for 1,000 servers (a CronJob's run on a 2-core node); the floor is measured in the same run")
PY
