# Sourced by hack/demo.sh and hack/bench-pg.sh: a real PostgreSQL cluster (Debian's server
# binaries, run as the postgres user) archiving its WAL into a spool directory.

# The server binaries of the newest PostgreSQL installed.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
free_tcp_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# pg_cluster DATA SOCKET PORT SPOOL: initdb in DATA (its socket and log in SOCKET), archiving
# each finished WAL segment into SPOOL (`test ! -f` first, as the sample plan says), started.
pg_cluster() {
  local data=$1 sock=$2 port=$3 spool=$4
  mkdir -p "$data" "$sock" "$spool"
  chown postgres: "$data" "$sock" "$spool"
  as_pg "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
port = $port
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $spool/%f && cp %p $spool/%f'
CONF
  as_pg "$pg_bin/pg_ctl" -D "$data" -l "$sock/$(basename "$data").log" -w start >/dev/null
}
