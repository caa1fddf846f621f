#!/usr/bin/env bash
# Throughput of the host operations the agent runs, with the same tools and options:
#   ClamAV: clamscan -r over a generated tree of 10,000 files (the agent's scan command), with a
#           signature database built here (one hash signature, as in the tests);
#   restic: a full backup (--force) of the same tree, then a differential (--parent <full>)
#           after 100 files changed, into a local repository.
# Prints files/s and MB/s for each. Needs clamav and restic (Debian); writes only beneath a
# temporary directory that it removes.
set -euo pipefail
files=${1:-10000}
size=${2:-4096}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"

echo "generating $files files of $size bytes under $tree"
python3 - "$tree" "$files" "$size" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"d{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.dat"), "wb") as f:
        f.write(os.urandom(size))
PY
mb=$(python3 -c "print(round($files * $size / 1e6, 1))")
printf 'unyo benchmark test body\n' > "$tree/d000/infected.txt"
mkdir -p "$work/db"
sigtool --md5 "$tree/d000/infected.txt" | sed 's/:[^:]*$/:Unyo.Bench/' > "$work/db/bench.hdb"

rate() { python3 -c "import sys; s=float(sys.argv[1]); print(f'{s:.2f} s  {$files/s:,.0f} files/s  {$mb/s:.1f} MB/s')" "$1"; }
now() { date +%s.%N; }

t0=$(now)
out=$(clamscan -d "$work/db" -r --infected --stdout "$tree" || true)
t1=$(now)
found=$(grep -c ' FOUND$' <<<"$out" || true)
echo "clamscan  ($files files, $mb MB, $found detection): $(rate "$(python3 -c "print($t1-$t0)")")"

echo "correct horse battery staple" > "$work/pass"
restic() { command restic -r "$work/repo" --password-file "$work/pass" --no-cache --quiet "$@"; }
restic init >/dev/null
t0=$(now)
full=$(restic backup --json --force "$tree" | python3 -c "import sys,json; print([json.loads(l) for l in sys.stdin if l.strip()][-1]['snapshot_id'][:8])")
t1=$(now)
echo "restic full     ($files files, $mb MB): $(rate "$(python3 -c "print($t1-$t0)")")"
python3 - "$tree" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(100):
    with open(os.path.join(root, f"d{i // 500:03d}", f"f{i:05d}.dat"), "ab") as f:
        f.write(b"changed")
PY
t0=$(now)
restic backup --json --parent "$full" "$tree" >/dev/null
t1=$(now)
echo "restic differential (100 of $files files changed): $(rate "$(python3 -c "print($t1-$t0)")")"
