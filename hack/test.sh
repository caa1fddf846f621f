#!/usr/bin/env bash
# Everything the project checks, on a fresh machine as well as a warm one:
#   1. installs the Debian tools the tests use when they are missing,
#   2. builds the control plane (kube-apiserver, kubectl, etcd) from Go modules (cached by version),
#   3. cargo fmt --check, cargo clippy -D warnings,
#   4. unit and integration tests (the integration tests start their own control plane); they
#      include the check that manifests/crds is current and that the samples pass `unyo check`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

step "host tools"
# tool:Debian package — the agent's tests run real ping, chronyd (as an NTP server on
# 127.0.0.1), dpkg-query, ClamAV (clamscan, sigtool) and restic; the patch tests build .debs
# (dpkg-deb), index and release local repositories (dpkg-scanpackages, apt-ftparchive) and run
# apt-get against them beneath their own roots.
missing=()
for pair in openssl:openssl pg_basebackup:postgresql curl:curl python3:python3 ping:iputils-ping chronyd:chrony dpkg-query:dpkg clamscan:clamav sigtool:clamav restic:restic apt-get:apt dpkg-deb:dpkg dpkg-scanpackages:dpkg-dev apt-ftparchive:apt-utils; do
  tool=${pair%%:*}
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("${pair#*:}")
done
# The controller's notification test runs Debian's SMTP server (python3-aiosmtpd).
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
# The report tests read the PDF back (poppler-utils: pdftotext, pdftoppm) and the workbooks
# (python3-openpyxl); the PDF is set in Noto Sans CJK (fonts-noto-cjk).
# The agent's package is checked with lintian and systemd-analyze; the README's host install runs
# in an overlay of this machine's root (unshare, mount, chroot: util-linux, mount, coreutils).
for pair in pdftotext:poppler-utils pdftoppm:poppler-utils lintian:lintian systemd-analyze:systemd unshare:util-linux mount:mount strip:binutils; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
/usr/bin/python3 -c 'import openpyxl' 2>/dev/null || missing+=(python3-openpyxl)
# The Windows agent is cross-compiled with mingw-w64 and run under Debian's Wine 8.
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(mingw-w64)
[ -x /usr/lib/wine/wine64 ] || missing+=(wine64 wine)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian"
  apt-get update -qq
  # shellcheck disable=SC2207
  missing=($(printf '%s\n' "${missing[@]}" | sort -u))
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu

step "control plane binaries"
bin=$(hack/envtest/build.sh)
echo "using $bin"

step "Prometheus and promtool"
prom=$(hack/prometheus/build.sh)
echo "using $prom"
export UNYO_PROMETHEUS_BIN="$prom"

step "Go tools: Helm, crane, krew, the kstatus reader, the OCI image writer"
# Built from the wrapper modules under hack/ and cached by content (hack/go-tool.sh); built here
# once so that test binaries running in parallel find them.
hack/go-tool.sh helm helm.sh/helm/v3/cmd/helm
hack/go-tool.sh kstatus .
hack/go-tool.sh oci .
hack/go-tool.sh oci github.com/google/go-containerregistry/cmd/crane crane
hack/go-tool.sh krew sigs.k8s.io/krew/cmd/krew kubectl-krew
hack/go-tool.sh krew sigs.k8s.io/krew/cmd/validate-krew-manifest validate-krew-manifest

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p unyo-agent --target x86_64-pc-windows-gnu --locked -- -D warnings

step "unit and integration tests"
cargo test --workspace --locked

echo
echo "hack/test.sh: all checks passed in $(( $(date +%s) - t0 ))s"
