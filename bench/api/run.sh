#!/usr/bin/env bash
# Server benchmarks, each a ratio against a baseline measured in the same run:
#   ingest: sealed 540 KB updates posted to fedagg (202 after commit), in the
#           binary and the JSON form, against raw libpq INSERTs of the same
#           bytes into the same database and against opening the same box
#           with the server key (decrypt only)
#   model:  GET /api/federated/model/<v>.safetensors requests/s against
#           Debian's nginx serving the same file, both driven by wrk
# usage: run.sh FEDAGG BENCH_INGEST   (starts its own PostgreSQL; needs nginx-light and wrk)
set -euo pipefail
fedagg=$1 ingest=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
for p in nginx-light wrk; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        { sudo=; [ "$(id -u)" = 0 ] || sudo=sudo;
          $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q "$p" >/dev/null; }
done

work=$(mktemp -d /tmp/fedagg-bench.XXXXXX)
chmod 755 "$work"
server=
nginx_pid=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    bash "$root/scripts/pg-cluster.sh" destroy "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

db=$(bash "$root/scripts/pg-cluster.sh" start "$work/pg")
"$fedagg" migrate --database-url "$db" >/dev/null
"$fedagg" keygen --out "$work/keys" >/dev/null
# Every update goes to round 1, which must not end during the benchmark (a
# close would compete with ingest): a round runs to its deadline whatever
# arrives, and the updates stay below max_cohort.
# Every device of the load runs on this host: no per-address rate limit.
DATABASE_URL=$db FEDAGG_KEY_DIR=$work/keys FEDAGG_PORT=0 FEDAGG_ROUND_DEADLINE_S=3600 \
    FEDAGG_MAX_COHORT=1000000 FEDAGG_LOG_LEVEL=error FEDAGG_HTTP_THREADS=4 FEDAGG_DB_POOL_SIZE=8 \
    FEDAGG_RATE_LIMIT_PER_S=0 \
    "$fedagg" serve >"$work/serve.out" &
server=$!
for _ in $(seq 100); do grep -q '^listening' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/serve.out")

"$ingest" --server "$url" --database-url "$db" --key-dir "$work/keys" \
    --updates "${FA_BENCH_UPDATES:-300}" --clients 4

# GET /model/<v>: the same bytes from fedagg and from nginx.
mkdir -p "$work/www"
curl -sf "$url/api/federated/model/0.safetensors" -o "$work/www/model.safetensors"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    server {
        listen 127.0.0.1:$nport;
        root $work/www;
        location / { add_header Cache-Control "public, max-age=31536000, immutable"; }
    }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
sleep 0.5
rps() { wrk -t2 -c16 -d"${FA_BENCH_SECONDS:-5}"s "$1" | awk '/Requests\/sec/ {print $2}'; }
f=$(rps "$url/api/federated/model/0.safetensors")
n=$(rps "http://127.0.0.1:$nport/model.safetensors")
size=$(stat -c %s "$work/www/model.safetensors")
python3 -c "import json; f,n=$f,$n; print(json.dumps({'bench':'model-get','bytes':$size,'fedagg_rps':f,'nginx_rps':n,'ratio':round(f/n,3)}))"
