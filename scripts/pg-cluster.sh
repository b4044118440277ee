#!/usr/bin/env bash
# Throwaway or embedded PostgreSQL clusters for fedagg.
#
#   pg-cluster.sh start DIR     initdb DIR (once) and start it on a free loopback
#                               port; prints the conninfo (also in DIR/conninfo)
#   pg-cluster.sh stop DIR      stop the cluster (fast shutdown)
#   pg-cluster.sh restart DIR   stop and start again on the same port
#   pg-cluster.sh destroy DIR   stop and remove DIR
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres`
# OS user (runuser), which must own DIR. FSYNC=off (the default here: these
# clusters hold test or demo data) can be overridden with FSYNC=on.
# FA_CLUSTER_REGISTRY=FILE: start appends DIR to FILE, so whoever set it can
# stop every cluster started under it (the test command does, for clusters a
# test that failed or timed out left running).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|restart|destroy DIR" >&2; exit 2; }

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        bindir=$(pg_config --bindir)
    else
        bindir=/usr/lib/postgresql/15/bin
    fi
fi
[ -x "$bindir/initdb" ] || { echo "pg-cluster: initdb not found in $bindir (install postgresql-15)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

data=$dir/data
sock=$dir/sock
log=$dir/server.log

free_port() {
    # Ask the kernel for a free port, then hand it to postgres (a small race
    # that start() survives by retrying with another port).
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

do_init() {
    mkdir -p "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data" "$sock"
        [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
        chmod 700 "$data"
        as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 \
            --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
}

do_start() {
    local port tries=0
    do_init
    port=$(cat "$dir/port" 2>/dev/null || true)
    while :; do
        [ -n "$port" ] || port=$(free_port)
        if as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -o \
            "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=${FSYNC:-off} -c synchronous_commit=${FSYNC:-off} -c full_page_writes=${FSYNC:-off} -c max_connections=200 -c shared_buffers=128MB" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 5 ]; then
            echo "pg-cluster: could not start PostgreSQL; log follows" >&2
            tail -n 20 "$log" >&2 || true
            exit 1
        fi
        port=
    done
    echo "$port" >"$dir/port"
    echo "host=$sock port=$port user=postgres dbname=postgres" >"$dir/conninfo"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/port" "$dir/conninfo"
    if [ -n "${FA_CLUSTER_REGISTRY:-}" ]; then
        echo "$(cd "$dir" && pwd)" >>"$FA_CLUSTER_REGISTRY"
    fi
    cat "$dir/conninfo"
}

do_stop() {
    if [ -f "$data/postmaster.pid" ]; then
        as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart) do_stop; do_start >/dev/null ;;
destroy) do_stop; rm -rf "$dir" ;;
*) echo "usage: $0 start|stop|restart|destroy DIR" >&2; exit 2 ;;
esac
