#!/usr/bin/env bash
# The unyo demo on a fresh machine: a real local control plane with the sample fleet of a
# prefectural union (namespace mie), and unyo-controller keeping the calendar's status current.
#
#   hack/demo.sh        start (or restart) the demo and show the fleet
#   hack/demo.sh down   stop the demo's control plane
#
# The control plane and the controller keep running after the script ends so that you can
# explore them with the `export KUBECONFIG=...` line it prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

demo_dir="${UNYO_DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/demo}"
# The simulated hosts' roots and the demo's PostgreSQL, where the postgres user can reach them.
hosts_dir="${UNYO_DEMO_HOSTS:-/var/tmp/unyo-demo}"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Stops the controller and agent this demo started (their pids are recorded in the demo
# directory).
stop_controller() {
  for pidfile in "$demo_dir/controller.pid" "$demo_dir"/agent*.pid "$demo_dir/prometheus.pid"; do
    if [ -e "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  # The demo's PostgreSQL clusters (db01's, and the one restored to a time).
  for data in "$hosts_dir/pg/live" "$hosts_dir/patch/db01-root/srv/restore/pg"; do
    if [ -e "$data/postmaster.pid" ]; then
      setpriv --reuid=postgres --regid=postgres --init-groups -- \
        "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
    fi
  done
}

if [ "${1:-}" = "down" ]; then
  stop_controller
  hack/control-plane.sh down --dir "$demo_dir"
  rm -rf "$hosts_dir"
  exit 0
fi

step "building the control plane (first run only) and the unyo binaries"
bin=$(hack/envtest/build.sh)
prom_bin=$(hack/prometheus/build.sh)
cargo build -q --bin unyo --bin unyo-controller --bin unyo-agent --bin patch-lab
unyo=target/debug/unyo
kubectl() { "$bin/kubectl" "$@"; }

step "starting etcd and kube-apiserver on 127.0.0.1"
stop_controller
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

step "starting unyo-controller (log: $demo_dir/controller.log)"
target/debug/unyo-controller --kubeconfig "$KUBECONFIG" >"$demo_dir/controller.log" 2>&1 &
echo $! >"$demo_dir/controller.pid"
kubectl wait --for=condition=Ready --timeout=60s -n mie operationcalendar/mie-operations >/dev/null

step "the calendar's state now, kept current by the controller (kubectl get opcal -n mie -o wide)"
kubectl get opcal -n mie -o wide
kubectl get opcal -n mie mie-operations -o jsonpath='{range .status.upcomingHolidays[*]}{.date}{"\t"}{.name}{"\n"}{end}'

# The sample production PatchBaseline selects every production server, ops01 too; its agent
# would search this machine's own apt sources. The demo keeps this machine out of it.
kubectl patch pb production -n mie --type=merge \
  -p '{"spec":{"selector":{"matchExpressions":[{"key":"unyo.dev/role","operator":"NotIn","values":["ops"]}]}}}' >/dev/null

step "an agent for this machine, as Server ops01, with least privilege (unyo agent bootstrap)"
"$unyo" agent bootstrap ops01 -n mie --out "$demo_dir/ops01.kubeconfig" --token-ttl 24h
# The host policy of this machine allows exactly what the demo asks of it: a scan, quarantine
# and a backup within the demo directory, the baseline policy's log checks under /var/log.
ops="$demo_dir/ops"
(umask 077; cat >"$demo_dir/ops01-agent.yaml" <<POLICY
backup:
  repositories: [$ops/backup]
  passwordFiles: [$ops/backup.pass]
  sources: [$ops/data]
  restoreTargets: [$ops/restore]
antivirus:
  actions: [Quarantine]
  quarantineDirs: [$ops/quarantine]
  signatureDirectories: [$ops/signatures]
logs:
  files: [/var/log]
patches: {install: false, reboot: false}
POLICY
)
echo "host policy of ops01 ($demo_dir/ops01-agent.yaml):"
sed 's/^/  /' "$demo_dir/ops01-agent.yaml"
# This machine's operating statistics go to /metrics; the requests of a web server are counted
# from its access log (here one the demo writes).
: >"$demo_dir/access.log"
metrics_ports=("$(free_port)")
target/debug/unyo-agent --server ops01 -n mie --kubeconfig "$demo_dir/ops01.kubeconfig" \
  --host-policy "$demo_dir/ops01-agent.yaml" \
  --metrics-addr "127.0.0.1:${metrics_ports[0]}" --access-log "$demo_dir/access.log" \
  --state-dir "$demo_dir/agent-state" --heartbeat 10s >"$demo_dir/agent.log" 2>&1 &
echo $! >"$demo_dir/agent.pid"
for _ in $(seq 60); do
  checks=$(kubectl get server ops01 -n mie -o jsonpath='{.status.checks[*].check}')
  [ -n "$(kubectl get server ops01 -n mie -o jsonpath='{.status.observed.hash}')" ] && [ -n "$checks" ] && break
  sleep 0.5
done
echo "observed facts of this machine (status.observed):"
kubectl get server ops01 -n mie -o jsonpath='  hostname {.status.observed.hostname}, {.status.observed.os.name} {.status.observed.os.version} ({.status.observed.os.build}), kernel {.status.observed.os.kernel}, {.status.observed.cpu.threads} CPUs, {.status.observed.memoryBytes} bytes of memory{"\n"}'
echo "  $(kubectl get server ops01 -n mie -o jsonpath='{.status.observed.packages[*].name}' | wc -w) packages (dpkg), facts it could not read:"
kubectl get server ops01 -n mie -o jsonpath='{range .status.observed.unknown[*]}    {.fact}: {.reason}{"\n"}{end}'
echo "checks of the baseline policy (status.checks):"
kubectl get server ops01 -n mie -o jsonpath='{range .status.checks[*]}  {.policy}/{.check}{"\t"}{.state}{"\t"}{.message}{"\n"}{end}'
kubectl get lease -n mie unyo-agent-ops01

step "the controller compares ops01's ledger with this machine: drift becomes a ChangeRecord"
for _ in $(seq 60); do
  [ -n "$(kubectl get server ops01 -n mie -o jsonpath='{.status.changeRecord}')" ] && break
  sleep 0.5
done
kubectl get server ops01 -n mie -o jsonpath='{range .status.drift[*]}  {.path}: ledger {.expected}, host {.observed}{"\n"}{end}'
kubectl get servers -n mie
kubectl get changerecords -n mie

step "a virus scan and a backup on this machine, within the demo directory only"
# The sample 'daily' scan selects every server; here it is narrowed so that this machine (ops01)
# is scanned only in the demo directory.
kubectl patch vss daily -n mie --type=merge \
  -p '{"spec":{"selector":{"matchExpressions":[{"key":"unyo.dev/role","operator":"NotIn","values":["ops"]}]}}}' >/dev/null
rm -rf "$ops"
mkdir -p "$ops/scan/www" "$ops/signatures" "$ops/data"
printf 'unyo demo test virus (harmless)\n' >"$ops/scan/www/upload.php"
sigtool --md5 "$ops/scan/www/upload.php" | sed 's/:[^:]*$/:Unyo.Demo.TestFile/' >"$ops/signatures/demo.hdb"
printf 'ledger data of the demo\n' >"$ops/data/ledger.csv"
printf 'demo password, a file on the host\n' >"$ops/backup.pass"
kubectl apply --server-side --field-manager=unyo-demo -f - <<YAML >/dev/null
apiVersion: unyo.dev/v1alpha1
kind: VirusScanSchedule
metadata: {name: demo-scan, namespace: mie}
spec:
  selector: {matchLabels: {unyo.dev/role: ops}}
  schedule: {calendar: mie-operations, at: "12:30"}
  paths: [$ops/scan]
  residentCheck: false
  signatures: {maxAge: 24h, sourceDirectory: $ops/signatures}
  actions: [Quarantine, Notify]
  quarantineDir: $ops/quarantine
---
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: demo-backup, namespace: mie}
spec:
  selector: {matchLabels: {unyo.dev/role: ops}}
  sources: [{name: ledger, paths: [$ops/data]}]
  repositories:
    primary: {location: $ops/backup/primary, passwordFile: $ops/backup.pass}
    secondary: {location: $ops/backup/secondary, passwordFile: $ops/backup.pass, offsite: true}
  rules:
    - {name: weekly-full, type: Full, schedule: {calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}
    - {name: daily-diff, type: Differential, schedule: {calendar: mie-operations, at: "19:30", days: BusinessDays}}
  media: {informationClass: ClassI, label: demo}
  verification: {checkAfterRun: true}
YAML
kubectl annotate --overwrite server ops01 -n mie unyo.dev/scan-now="demo-$(date +%s)" >/dev/null
echo "unyo backup now (the agent answers in the Server's status, which only it may write):"
"$unyo" backup now --server ops01 -n mie --reason demo --timeout 2m | sed 's/^/  /'
for _ in $(seq 120); do
  detections=$(kubectl get server ops01 -n mie -o jsonpath='{.status.operations.antivirus.lastScan.detections}')
  [ -n "$detections" ] && break
  sleep 0.5
done
kubectl get server ops01 -n mie -o jsonpath='scan: {.status.operations.antivirus.lastScan.message}; found {range .status.operations.antivirus.detections[*]}{.signature} in {.path} ({.actions[0]}){end}{"\n"}'
kubectl get server ops01 -n mie -o jsonpath='backup: {range .status.operations.backups[*]}plan {.plan}: {.lastFull.message}; snapshot {.lastFull.snapshot}; {.generations} generation(s); check {.lastVerification.result}{end}{"\n"}'
kubectl get vss,bp -n mie

step "what the host does not allow is refused, reported with the field and the rule"
kubectl apply --server-side --field-manager=unyo-demo -f - <<YAML >/dev/null
apiVersion: unyo.dev/v1alpha1
kind: BackupPlan
metadata: {name: copy-everything, namespace: mie}
spec:
  selector: {matchLabels: {unyo.dev/role: ops}}
  sources: [{name: all, paths: [/]}]
  repositories: {primary: {location: /tmp/elsewhere, passwordFile: /proc/sys/kernel/ostype}}
  rules: [{name: weekly, type: Full, schedule: {calendar: mie-operations, at: "19:30", days: FirstBusinessDayOfWeek}}]
  media: {informationClass: ClassI}
YAML
for _ in $(seq 60); do
  [ "$(kubectl get server ops01 -n mie -o jsonpath='{.status.conditions[?(@.type=="HostPolicyAllowed")].status}')" = False ] && break
  sleep 0.5
done
kubectl get server ops01 -n mie -o jsonpath='{range .status.operations.refusals[*]}  {.kind}/{.name} {.field}: rule {.rule}{"\n"}{end}'
kubectl get server ops01 -n mie -o jsonpath='  HostPolicyAllowed={.status.conditions[?(@.type=="HostPolicyAllowed")].status}: {.status.conditions[?(@.type=="HostPolicyAllowed")].message}{"\n"}'
kubectl delete bp copy-everything -n mie >/dev/null

step "patches, staging first: agents for stg-db01 and db01 on simulated hosts with real apt"
# Two host roots beneath the demo directory with file-based apt repositories: a security update
# released 5 days ago and a bugfix released yesterday. The sample baselines judge them: staging
# approves security patches after 3 days, production only what staging has run for 7 days.
patch_dir="$hosts_dir/patch"
mkdir -p "$hosts_dir" && chmod 755 "$hosts_dir"
target/debug/patch-lab "$patch_dir" stg-db01 db01 >/dev/null
# The simulated hosts allow patch installs (staging installs in its window), no reboot.
(umask 077; printf 'patches: {install: true, reboot: false}\n' >"$demo_dir/agent-stg-db01.yaml")
# db01 also backs up its database (below): the sample plan's repositories, spool and user.
(umask 077; cat >"$demo_dir/agent-db01.yaml" <<'POLICY'
patches: {install: true, reboot: false}
backup:
  repositories: [/srv/backup]
  passwordFiles: [/etc/unyo]
  sources: [/var/lib/unyo/wal, /srv/report]
  restoreTargets: [/srv/restore]
  osUsers: [postgres]
POLICY
)
for h in stg-db01 db01; do
  "$unyo" agent bootstrap "$h" -n mie --out "$demo_dir/$h.kubeconfig" --token-ttl 24h >/dev/null
  port=$(free_port)
  metrics_ports+=("$port")
  target/debug/unyo-agent --server "$h" -n mie --kubeconfig "$demo_dir/$h.kubeconfig" \
    --host-policy "$demo_dir/agent-$h.yaml" \
    --root "$patch_dir/$h-root" --state-dir "$demo_dir/agent-state-$h" --heartbeat 10s \
    --metrics-addr "127.0.0.1:$port" \
    >"$demo_dir/agent-$h.log" 2>&1 &
  echo $! >"$demo_dir/agent-$h.pid"
done
for _ in $(seq 120); do
  [ -n "$(kubectl get pb production -n mie -o jsonpath='{.status.candidates[*].package}')" ] && break
  sleep 0.5
done
kubectl get pb -n mie
kubectl get server stg-db01 -n mie -o jsonpath='stg-db01 scan: {range .status.operations.patchScan.available[*]}{.package} {.installedVersion} -> {.version} ({.classification}, {.archive}); {end}{"\n"}'
"$unyo" patch report -n mie

step "a real Prometheus scrapes the agents' operating statistics (spec 4.1(4)) every 5 s"
prom_port=$(free_port)
prom_url="http://127.0.0.1:$prom_port"
mkdir -p "$demo_dir/prometheus"
{
  printf 'global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: unyo-agent\n    static_configs:\n      - targets: ['
  printf "'127.0.0.1:%s'," "${metrics_ports[@]}" | sed 's/,$//'
  printf ']\n'
} >"$demo_dir/prometheus/prometheus.yml"
"$prom_bin/prometheus" --config.file="$demo_dir/prometheus/prometheus.yml" \
  --storage.tsdb.path="$demo_dir/prometheus/data" --web.listen-address="127.0.0.1:$prom_port" \
  --log.level=warn >"$demo_dir/prometheus.log" 2>&1 &
echo $! >"$demo_dir/prometheus.pid"
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$prom_url/-/ready" 2>/dev/null && break
  sleep 0.2
done
echo "Prometheus at $prom_url scrapes ${#metrics_ports[@]} agents (the simulated hosts have no kernel"
echo "counters beneath their roots, only filesystems); for example the memory they report:"
for _ in $(seq 30); do
  curl -fsS "$prom_url/api/v1/query" --data-urlencode 'query=unyo_host_memory_available_bytes' >"$demo_dir/prom-query.json"
  grep -q '"server"' "$demo_dir/prom-query.json" && break
  sleep 1
done
python3 - "$demo_dir/prom-query.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["data"]["result"]:
    print("  %s: %d MiB available" % (s["metric"]["server"], int(float(s["value"][1])) // 2**20))
PY
# The web server's requests, while the demo goes on.
( for i in $(seq 3000); do echo "10.0.0.$((i % 250)) - - \"GET /kyufu/$i HTTP/1.1\" 200 512" >>"$demo_dir/access.log"; sleep 0.1; done ) &
echo $! >"$demo_dir/agent-weblog.pid"

step "the sample DB plan backs up a real PostgreSQL on db01, and restores it to just before a DROP"
# A real PostgreSQL (Debian's, as the postgres user) standing in for db01's database, archiving
# its WAL into the spool the sample plan names (beneath db01's simulated root).
. hack/pg-cluster.sh
pgbin=$pg_bin
db01="$patch_dir/db01-root"
pgdir="$hosts_dir/pg"
rm -rf "$pgdir" "$db01/srv/backup" "$db01/srv/restore"
mkdir -p "$pgdir" "$db01/etc/unyo" "$db01/srv/report" "$db01/srv/restore"
chmod 755 "$pgdir"
pgport=$(free_tcp_port)
pg_cluster "$pgdir/live" "$pgdir/sock" "$pgport" "$db01/var/lib/unyo/wal/db"
psql() { as_pg "$pgbin/psql" -X -At -q -h "$pgdir/sock" -p "$1" -U postgres -d postgres -c "$2"; }
printf 'primary media password\n' >"$db01/etc/unyo/backup-primary.pass"
printf 'secondary media password\n' >"$db01/etc/unyo/backup-secondary.pass"
printf 'monthly report of the union\n' >"$db01/srv/report/2026-11.csv"
# The demo's cluster instead of /var/run/postgresql:5432; the secondary on a local disk
# instead of sftp:backup01 (no network here).
kubectl patch bp db-and-reports -n mie --type=json -p "[
  {\"op\": \"replace\", \"path\": \"/spec/sources/0/postgresql/host\", \"value\": \"$pgdir/sock\"},
  {\"op\": \"replace\", \"path\": \"/spec/sources/0/postgresql/port\", \"value\": $pgport},
  {\"op\": \"replace\", \"path\": \"/spec/repositories/secondary/location\", \"value\": \"/srv/backup/secondary\"}]" >/dev/null
mkdir -p "$db01/proc"
printf '/dev/sda1 / ext4 rw 0 0\n' >"$db01/proc/mounts"
echo "the primary requires a mounted backup disk; db01's is not mounted yet:"
"$unyo" backup now --server db01 -n mie --reason before-version-up --timeout 5m 2>&1 | sed 's/^/  /' || true
printf '/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /srv/backup ext4 rw,relatime 0 0\n' >"$db01/proc/mounts"
echo "with /srv/backup mounted (in db01's simulated /proc/mounts):"
"$unyo" backup now --server db01 -n mie --reason before-version-up --timeout 5m | sed 's/^/  /'
psql "$pgport" "CREATE TABLE claims (id int PRIMARY KEY, amount int)"
psql "$pgport" "INSERT INTO claims SELECT g, g * 100 FROM generate_series(1, 1000) g"
sleep 1.5
before_drop=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 1.5
psql "$pgport" "DROP TABLE claims"
psql "$pgport" "SELECT pg_switch_wal()" >/dev/null
echo "1,000 claims written; at $before_drop all is well; then DROP TABLE claims (the failure)"
for _ in $(seq 240); do
  [ -z "$(ls -A "$db01/var/lib/unyo/wal/db")" ] && \
    [ -n "$(kubectl get server db01 -n mie -o jsonpath='{.status.operations.backups[?(@.plan=="db-and-reports")].journals[0].lastSegment}')" ] && break
  sleep 0.5
done
kubectl get server db01 -n mie -o jsonpath='{range .status.operations.backups[?(@.plan=="db-and-reports")]}  full: {.lastFull.message}{"\n"}  journal: {.journals[0].message}, up to segment {.journals[0].lastSegment}{"\n"}{end}'
echo "unyo backup restore --to-time $before_drop --dry-run:"
"$unyo" backup restore --server db01 --plan db-and-reports -n mie --to-time "$before_drop" --target /srv/restore/pg --dry-run | sed 's/^/  /'
echo "unyo backup restore --to-time $before_drop:"
"$unyo" backup restore --server db01 --plan db-and-reports -n mie --to-time "$before_drop" --target /srv/restore/pg --timeout 5m | sed 's/^/  /'
restport=$(free_tcp_port)
as_pg "$pgbin/pg_ctl" -D "$db01/srv/restore/pg" -l "$pgdir/sock/restored.log" -o "-p $restport" -w start >/dev/null
for _ in $(seq 100); do
  [ "$(psql "$restport" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && break
  sleep 0.2
done
echo "the restored cluster, started: $(psql "$restport" "SELECT count(*) || ' claims, ' || sum(amount) || ' yen' FROM claims")"

step "unyo calendar: national holidays, business days and schedule fire times, offline"
"$unyo" calendar holidays --year 2027
"$unyo" calendar check -f manifests/samples/calendar.yaml --date 2027-01-01 || true
echo "weekly full backup (days=FirstBusinessDayOfWeek,at=19:30):"
"$unyo" calendar next -f manifests/samples/calendar.yaml -s 'days=FirstBusinessDayOfWeek,at=19:30' --from 2026-12-20 -n 4

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

step "the monthly report the union receives (⑦, in Japanese) and the configuration ledger"
month=$(TZ=Asia/Tokyo date +%Y-%m)
mkdir -p "$demo_dir/reports"
for f in pdf xlsx; do
  "$unyo" report monthly -n mie --month "$month" --prometheus "$prom_url" --format "$f" --out "$demo_dir/reports"
done
"$unyo" ledger export -n mie --format xlsx --out "$demo_dir/reports"
pdftotext -layout -l 1 "$demo_dir/reports/monthly-mie-$month.pdf" - 2>/dev/null | grep -m 8 -E '提出期限|管理対象|営業日数|発生件数|稼働率' | sed 's/^/  /' || true

cat <<MSG

The demo control plane is running. To explore it:
  $export_line
  export PATH=$bin:\$PATH
  kubectl get servers -n mie -o wide
  kubectl explain server.spec.hardware
The controller (pid $(cat "$demo_dir/controller.pid")) logs to $demo_dir/controller.log,
the agent (pid $(cat "$demo_dir/agent.pid")) to $demo_dir/agent.log, the agents of the simulated
hosts stg-db01 and db01 to $demo_dir/agent-stg-db01.log and agent-db01.log.
Prometheus ($prom_url, pid $(cat "$demo_dir/prometheus.pid")) scrapes the agents.
The monthly report of $month: $demo_dir/reports/monthly-mie-$month.pdf and .xlsx,
the configuration ledger: $demo_dir/reports/ledger-mie.xlsx
Stop everything with: hack/demo.sh down
MSG
