#!/usr/bin/env bash
# Throughput of a PostgreSQL source's backups through the real agent, beside the limit measured
# in the same run on the same data:
#   base backup: bare `pg_basebackup -X fetch --checkpoint=fast` into a directory (the limit),
#                then the agent's full on request (`unyo backup now`): pg_basebackup as the
#                postgres user, restic into the primary, restic copy into the secondary,
#                retention and `restic check`, timed by the run's own start and end in status;
#   WAL archive: N segments of 16 MiB archived by the cluster into the spool, shipped by the
#                agent (restic into the primary, copy into the secondary, removed from the
#                spool), timed from a full spool to an empty one, beside `cp` of the same
#                segments (what archive_command itself costs, the limit).
# A real local control plane (hack/control-plane.sh), Debian's PostgreSQL as the postgres user,
# restic; everything beneath a temporary directory that is removed, every process stopped.
#
#   hack/bench-pg.sh [pgbench scale, default 20 (about 300 MB)] [WAL segments, default 32]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scale=${1:-20}
segments=${2:-32}
. hack/pg-cluster.sh
[ -n "$pg_bin" ] && command -v restic >/dev/null || {
  echo "hack/bench-pg.sh needs Debian's postgresql and restic (hack/test.sh installs both)" >&2
  exit 1
}
work=$(mktemp -d)
chmod 755 "$work"
pg=$pg_bin
now() { date +%s.%N; }
mbs() { python3 -c "import sys; b,s=float(sys.argv[1]),float(sys.argv[2]); print(f'{s:.2f} s  {b/1e6/s:.1f} MB/s')" "$1" "$2"; }
cleanup() {
  [ -f "$work/agent.pid" ] && kill "$(cat "$work/agent.pid")" 2>/dev/null || true
  [ -d "$work/pg" ] && as_pg "$pg/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  hack/control-plane.sh down --dir "$work/cp" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build -q --bin unyo --bin unyo-agent
bin=$(hack/envtest/build.sh)
kubectl() { "$bin/kubectl" "$@"; }
eval "$(hack/control-plane.sh up --dir "$work/cp" 2>/dev/null | tail -1)"
kubectl apply --server-side -f manifests/crds >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f manifests/crds >/dev/null
kubectl create namespace bench >/dev/null

root="$work/root"
spool="$root/var/lib/unyo/wal/db"
mkdir -p "$root/etc/unyo"
echo "a passphrase" >"$root/etc/unyo/backup.pass"
port=$(free_tcp_port)
pg_cluster "$work/pg" "$work/sock" "$port" "$spool"
psql() { as_pg "$pg/psql" -X -At -q -h "$work/sock" -p "$port" -U postgres -d postgres "$@"; }
as_pg "$pg/pgbench" -i -q -s "$scale" -h "$work/sock" -p "$port" -U postgres postgres 2>/dev/null
psql -c "CHECKPOINT" -c "SELECT pg_switch_wal()" >/dev/null
sleep 2
rm -f "$spool"/*
size=$(du -sb "$work/pg" | cut -f1)
echo "data: pgbench scale $scale, data directory $(python3 -c "print(round($size/1e6))") MB"

# The limit: bare pg_basebackup of the same cluster.
mkdir -p "$work/bare" && chown postgres: "$work/bare"
t0=$(now)
as_pg "$pg/pg_basebackup" -D "$work/bare/data" -X fetch --checkpoint=fast -h "$work/sock" -p "$port" -U postgres
t1=$(now)
bare=$(du -sb "$work/bare/data" | cut -f1)
echo "bare pg_basebackup (the limit):     $(mbs "$bare" "$(python3 -c "print($t1-$t0)")")"
rm -rf "$work/bare"

sed 's/namespace: mie/namespace: bench/' manifests/samples/calendar.yaml | kubectl apply --server-side -f - >/dev/null
kubectl apply --server-side -f - >/dev/null <<YAML
apiVersion: unyo.dev/v1alpha1
kind: Server
metadata: {name: db01, namespace: bench, labels: {unyo.dev/role: db}}
spec: {hostname: db01, role: DB, os: {name: Debian GNU/Linux, version: "12"}}
---
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: db, namespace: bench}
spec:
  selector: {matchLabels: {unyo.dev/role: db}}
  sources:
    - {name: pgdata, type: PostgreSQL, postgresql: {host: "$work/sock", port: $port, walSpool: /var/lib/unyo/wal/db, shipEvery: 1s}}
  repositories:
    primary: {location: /backup/primary, passwordFile: /etc/unyo/backup.pass}
    secondary: {location: /backup/secondary, passwordFile: /etc/unyo/backup.pass, offsite: true}
  rules:
    - {name: weekly-full, type: Full, schedule: {calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}
  media: {informationClass: ClassI}
  verification: {checkAfterRun: true}
YAML
target/debug/unyo agent bootstrap db01 -n bench --out "$work/agent.kubeconfig" --token-ttl 1h >/dev/null
cat >"$work/agent.yaml" <<POLICY
backup:
  repositories: [/backup]
  passwordFiles: [/etc/unyo]
  sources: [/var/lib/unyo/wal]
  osUsers: [postgres]
POLICY
chmod 600 "$work/agent.yaml"
target/debug/unyo-agent --server db01 -n bench --kubeconfig "$work/agent.kubeconfig" \
  --host-policy "$work/agent.yaml" --root "$root" --state-dir "$work/state" \
  >"$work/agent.log" 2>&1 &
echo $! >"$work/agent.pid"

# The agent's base backup, as its run reports it.
target/debug/unyo backup now --server db01 -n bench --reason bench --timeout 30m >/dev/null
run=$(kubectl get server db01 -n bench -o jsonpath='{.status.operations.backups[0].lastFull.startedAt} {.status.operations.backups[0].lastFull.finishedAt}')
secs=$(python3 -c "import sys; from datetime import datetime as d; a,b=sys.argv[1:3]; f=lambda s: d.fromisoformat(s.replace('Z','+00:00')); print((f(b)-f(a)).total_seconds())" $run)
echo "agent base backup (full run):       $(mbs "$bare" "$secs")  (pg_basebackup, restic backup, restic copy, retention, restic check)"

# WAL: N segments of fresh data, archived by the cluster, then shipped by the agent.
kill -STOP "$(cat "$work/agent.pid")"
psql -c "CREATE TABLE filler (b bytea)" >/dev/null
for _ in $(seq "$segments"); do
  psql -c "INSERT INTO filler SELECT decode(repeat(md5(random()::text), 4000), 'hex') FROM generate_series(1, 120)" -c "SELECT pg_switch_wal()" >/dev/null
done
for _ in $(seq 600); do
  n=$(find "$spool" -maxdepth 1 -name '0*' -newer "$work/agent.kubeconfig" | wc -l)
  [ "$n" -ge "$segments" ] && break
  sleep 0.1
done
wal=$(du -cb "$spool"/0* | tail -1 | cut -f1)
count=$(ls "$spool" | wc -l)
mkdir -p "$work/cp-limit"
t0=$(now); cp "$spool"/0* "$work/cp-limit/"; sync "$work/cp-limit"; t1=$(now)
echo "cp of the $count archived segments (the limit): $(mbs "$wal" "$(python3 -c "print($t1-$t0)")")"
t0=$(now)
kill -CONT "$(cat "$work/agent.pid")"
while [ -n "$(ls -A "$spool")" ]; do sleep 0.05; done
t1=$(now)
echo "agent WAL shipping ($count files):  $(mbs "$wal" "$(python3 -c "print($t1-$t0)")")  (restic backup, restic copy, removal; from a full spool to an empty one, with up to 1 s until the job is due)"
