#!/usr/bin/env bash
# The run command: installs what is missing, builds fedagg, and when
# DATABASE_URL is unset creates (once) and starts a local PostgreSQL cluster
# under .fedagg/pg (the embedded default). Then it migrates, creates the
# server keys if missing, starts `fedagg serve`, drives a short demo
# federation of simulated devices (each published version and the ledger's
# cumulative epsilon are printed), verifies the ledger, and keeps serving
# until Ctrl-C. With --demo-only it stops after the demo.
#
# Environment: DATABASE_URL (use that database instead of the embedded one),
# FEDAGG_DATA_DIR (default .fedagg), FEDAGG_PORT (default 8080), any other
# FEDAGG_<KEY> of config/fedagg.conf.example.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo_only=0
[ "${1:-}" = "--demo-only" ] && demo_only=1

bash scripts/deps.sh run

if [ ! -f build-release/build.ninja ]; then
    meson setup build-release --buildtype=release -Dintegration_tests=disabled >/dev/null
fi
ninja -C build-release >/dev/null
fedagg=$root/build-release/src/fedagg
data=${FEDAGG_DATA_DIR:-$root/.fedagg}
mkdir -p "$data"

pgdir=
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$pgdir" ] && bash "$root/scripts/pg-cluster.sh" stop "$pgdir"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${DATABASE_URL:-}" ]; then
    pgdir=$data/pg
    # The embedded cluster holds real data: keep fsync on.
    DATABASE_URL=$(FSYNC=on bash scripts/pg-cluster.sh start "$pgdir")
    export DATABASE_URL
    echo "run: embedded PostgreSQL at $pgdir"
fi

"$fedagg" version
"$fedagg" migrate
keys=${FEDAGG_KEY_DIR:-$data/keys}
[ -f "$keys/box.sk" ] || "$fedagg" keygen --out "$keys"
export FEDAGG_KEY_DIR=$keys

# Demo settings unless the operator chose others: rounds of 10 devices,
# sigma 2 (three releases cost epsilon of about 4 against the default
# budget of 8 at delta 1e-5), and rounds of 5 s. A round always runs to its
# deadline and only then releases what arrived (600 s by default): the
# demo's 10 devices post within a second or two, so 5 s rounds finish the
# three demo rounds in about 15 s. The server keeps that deadline while it
# serves afterwards: an idle round is abandoned every 5 s (one ledger entry
# each, no privacy spent); set FEDAGG_ROUND_DEADLINE_S for longer rounds.
export FEDAGG_MIN_COHORT=${FEDAGG_MIN_COHORT:-10}
export FEDAGG_NOISE_MULTIPLIER=${FEDAGG_NOISE_MULTIPLIER:-2}
export FEDAGG_ROUND_DEADLINE_S=${FEDAGG_ROUND_DEADLINE_S:-5}
port=${FEDAGG_PORT:-8080}
export FEDAGG_PORT=$port
log=$data/serve.log
"$fedagg" serve >"$data/serve.out" 2>"$log" &
server=$!
for _ in $(seq 1 100); do
    grep -q '^listening on ' "$data/serve.out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "run: fedagg serve failed" >&2; exit 1; }
    sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$data/serve.out")
echo "run: fedagg serve is listening on $url (log: $log)"

echo "run: demo federation of 200 simulated devices, 3 rounds of ${FEDAGG_ROUND_DEADLINE_S} s"
"$fedagg" simulate --server "$url" --synthetic --users 200 --items 400 --rounds 3 --epochs 2 |
    while IFS= read -r line; do
        printf 'run: published %s\n' "$line"
    done
"$fedagg" ledger show
"$fedagg" ledger verify

if [ $demo_only = 1 ]; then
    exit 0
fi
echo "run: serving on $url until Ctrl-C"
wait "$server"
