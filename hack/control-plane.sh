#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver) on 127.0.0.1.
#
#   hack/control-plane.sh up [--dir DIR] [--owner-pid PID]
#       builds the binaries on first use (hack/envtest/build.sh), starts etcd and kube-apiserver on
#       free ports with fresh state in DIR (default: a new temporary directory), waits until both are
#       ready and prints `export KUBECONFIG=<path>` as its last line. With --owner-pid, a watchdog
#       stops both servers when that process ends (test harnesses use this so that nothing outlives
#       a failed or killed test run).
#   hack/control-plane.sh down [--dir DIR]
#       stops exactly the processes that `up` started (by the pids it recorded in DIR) and removes
#       DIR. Without --dir it uses the directory of the last `up` (recorded in the envtest cache).
#   hack/control-plane.sh env [--dir DIR]
#       prints the export line again.
#   hack/control-plane.sh restart apiserver|etcd [--dir DIR]
#       stops one of the two (SIGTERM) and starts it again on the same port with the same state
#       (the fault tests use this).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${UNYO_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unyo/envtest}
last_file="$cache_root/last-dir"

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL answers 200 (curl with the given extra args), at most $2 seconds.
wait_ok() {
  local what=$1 limit=$2 url=$3; shift 3
  local deadline=$(( $(date +%s) + limit ))
  until curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.2
  done
  log "$what ready"
}

stop_pid() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

make_certs() {
  local d=$1
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=unyo-envtest-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout serving.key -out serving.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out serving.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=unyo-admin" -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local d=$1 port=$2
  cat > "$d/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: unyo-envtest
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $d/ca.crt
users:
- name: unyo-admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: unyo-envtest
  context:
    cluster: unyo-envtest
    user: unyo-admin
current-context: unyo-envtest
EOF
}

# Starts etcd with the ports recorded in DIR/ports (its data stays in DIR/etcd-data).
start_etcd() {
  local dir=$1 bin etcd_port peer_port api_port
  # shellcheck disable=SC1091
  . "$dir/ports"
  local etcd_url="http://127.0.0.1:$etcd_port" peer_url="http://127.0.0.1:$peer_port"
  log "starting etcd on $etcd_url (state in $dir)"
  "$bin/etcd" --name unyo --data-dir "$dir/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "unyo=$peer_url" --unsafe-no-fsync=true --log-level=warn \
    >> "$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
  if ! wait_ok etcd 60 "$etcd_url/health"; then
    tail -20 "$dir/etcd.log" >&2
    stop_pid "$dir/etcd.pid"
    return 1
  fi
}

# Starts kube-apiserver with the ports recorded in DIR/ports.
start_apiserver() {
  local dir=$1 bin etcd_port peer_port api_port
  # shellcheck disable=SC1091
  . "$dir/ports"
  log "starting kube-apiserver on https://127.0.0.1:$api_port"
  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$dir" --tls-cert-file "$dir/serving.crt" --tls-private-key-file "$dir/serving.key" \
    --client-ca-file "$dir/ca.crt" --authorization-mode RBAC --allow-privileged=true \
    --service-cluster-ip-range 10.0.0.0/24 --disable-admission-plugins ServiceAccount \
    --service-account-issuer "https://127.0.0.1:$api_port/" \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    >> "$dir/apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"
  if ! wait_ok kube-apiserver 120 "https://127.0.0.1:$api_port/readyz" \
      --cacert "$dir/ca.crt" --cert "$dir/admin.crt" --key "$dir/admin.key"; then
    tail -30 "$dir/apiserver.log" >&2
    stop_pid "$dir/apiserver.pid"
    return 1
  fi
}

cmd_up() {
  local dir="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --owner-pid) owner=$2; shift 2 ;;
      *) die "unknown flag $1" ;;
    esac
  done
  local bin
  bin=$("$here/envtest/build.sh")
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/unyo-cp.XXXXXX")
  else
    [ -e "$dir/etcd.pid" ] && die "$dir already holds a running control plane; run down first"
    mkdir -p "$dir"
  fi
  dir=$(cd "$dir" && pwd)
  mkdir -p "$cache_root"
  echo "$dir" > "$last_file"
  make_certs "$dir"

  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  printf 'bin=%s\netcd_port=%s\npeer_port=%s\napi_port=%s\n' "$bin" "$etcd_port" "$peer_port" "$api_port" > "$dir/ports"
  start_etcd "$dir" || die "etcd did not become healthy; log: $dir/etcd.log"
  if ! start_apiserver "$dir"; then
    stop_pid "$dir/etcd.pid"
    die "kube-apiserver did not become ready; log: $dir/apiserver.log"
  fi
  write_kubeconfig "$dir" "$api_port"

  if [ -n "$owner" ]; then
    # The watchdog stops both servers when the owner goes away, whatever way it ends.
    nohup bash -c '
      owner=$1; dir=$2
      while kill -0 "$owner" 2>/dev/null; do sleep 1; done
      for p in apiserver etcd; do
        [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null
      done
      sleep 2
      for p in apiserver etcd; do
        [ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null
      done
      rm -rf "$dir"
    ' unyo-cp-watchdog "$owner" "$dir" > /dev/null 2>&1 &
    echo $! > "$dir/watchdog.pid"
  fi
  echo "export KUBECONFIG=$dir/kubeconfig"
}

resolve_dir() {
  local dir=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      *) die "unknown flag $1" ;;
    esac
  done
  if [ -z "$dir" ]; then
    [ -f "$last_file" ] || die "no --dir given and no control plane recorded as started"
    dir=$(cat "$last_file")
  fi
  echo "$dir"
}

cmd_down() {
  local dir
  dir=$(resolve_dir "$@")
  [ -d "$dir" ] || { log "nothing to stop: $dir does not exist"; return 0; }
  stop_pid "$dir/watchdog.pid"
  stop_pid "$dir/apiserver.pid"
  stop_pid "$dir/etcd.pid"
  rm -rf "$dir"
  if [ -f "$last_file" ] && [ "$(cat "$last_file")" = "$dir" ]; then rm -f "$last_file"; fi
  log "stopped and removed $dir"
}

# Stops one server of the control plane in DIR (SIGTERM, as a restart by systemd or a node
# would) and starts it again on the same port with the same state.
cmd_restart() {
  local which=${1:-}; shift || true
  local dir
  dir=$(resolve_dir "$@")
  [ -f "$dir/ports" ] || die "no control plane in $dir"
  case $which in
    apiserver) stop_pid "$dir/apiserver.pid"; start_apiserver "$dir" || die "kube-apiserver did not come back" ;;
    etcd) stop_pid "$dir/etcd.pid"; start_etcd "$dir" || die "etcd did not come back" ;;
    *) die "restart what? apiserver or etcd" ;;
  esac
  log "$which restarted"
}

cmd_env() {
  local dir
  dir=$(resolve_dir "$@")
  [ -f "$dir/kubeconfig" ] || die "no kubeconfig in $dir"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) shift; cmd_env "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  *) echo "usage: $0 up [--dir DIR] [--owner-pid PID] | down [--dir DIR] | env [--dir DIR] | restart apiserver|etcd [--dir DIR]" >&2; exit 2 ;;
esac
