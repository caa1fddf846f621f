#!/usr/bin/env bash
# How long the agent's patch scan takes on a host with a Debian-sized package index:
#   a file repository whose Packages index lists N packages (default 60,000, about Debian
#   bookworm main) in two versions each, released as a security archive, and a host root with
#   M of them installed (default 2,000) at the older version, so that M updates are on offer.
# Runs `unyo-agent --print-patches` (apt-get update, the simulated dist-upgrade, and the reading
# of the lists for classification, urgency and release date) and prints the time and the count.
# No .deb is built: a scan only reads the indexes. Writes only beneath a temporary directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
packages=${1:-60000}
installed=${2:-2000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q --release --bin unyo-agent
repo="$work/repo" root="$work/root"
mkdir -p "$repo" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc/apt"
python3 - "$repo/Packages" "$root/var/lib/dpkg/status" "$packages" "$installed" <<'PY'
import sys
index, status, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(index, "w") as f:
    for i in range(n):
        for v in ("1.0-1", "1.0-2"):
            f.write(f"Package: bench-{i:05d}\nVersion: {v}\nArchitecture: all\n"
                    f"Maintainer: bench <bench@unyo.invalid>\nFilename: ./bench-{i:05d}_{v}_all.deb\n"
                    f"Size: 1000\nSHA256: {'0' * 64}\nUrgency: {'high' if i % 3 == 0 else 'medium'}\n"
                    f"Description: unyo benchmark package {i}\n\n")
with open(status, "w") as f:
    for i in range(m):
        f.write(f"Package: bench-{i:05d}\nStatus: install ok installed\nVersion: 1.0-1\n"
                f"Architecture: all\nMaintainer: bench <bench@unyo.invalid>\nDescription: bench\n\n")
PY
touch "$root/var/lib/dpkg/available"
(cd "$repo" && apt-ftparchive -o APT::FTPArchive::Release::Origin=Debian \
  -o APT::FTPArchive::Release::Label=Debian-Security -o APT::FTPArchive::Release::Suite=bookworm-security \
  release . > "$work/Release" && mv "$work/Release" Release)
echo "deb [trusted=yes] file:$repo ./" > "$root/etc/apt/sources.list"
size=$(du -m "$repo/Packages" | cut -f1)
echo "index: $packages packages x 2 versions ($size MB), $installed installed with an update on offer"
t0=$(date +%s.%N)
target/release/unyo-agent --root "$root" --state-dir "$work/state" --print-patches >"$work/scan.json"
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$work/scan.json" <<'PY'
import json, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
scan = json.load(open(sys.argv[3]))
avail = scan.get("available", [])
security = sum(1 for u in avail if u["classification"] == "Security")
print(f"patch scan: {t1 - t0:.2f} s, succeeded={scan['succeeded']}, {len(avail)} updates "
      f"({security} classified Security, {sum(1 for u in avail if u.get('releasedAt'))} with a release date)")
PY
