#!/usr/bin/env bash
# The run command: installs what is missing, builds fedagg, and when
# DATABASE_URL is unset creates (once) and starts a local PostgreSQL cluster
# under .fedagg/pg (the embedded default), then migrates the database and
# reports its status. The cluster is stopped again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/deps.sh run

if [ ! -f build-release/build.ninja ]; then
    meson setup build-release --buildtype=release -Dintegration_tests=disabled >/dev/null
fi
ninja -C build-release >/dev/null
fedagg=$root/build-release/src/fedagg
data=${FEDAGG_DATA_DIR:-$root/.fedagg}
mkdir -p "$data"

if [ -z "${DATABASE_URL:-}" ]; then
    pgdir=$data/pg
    trap 'bash "$root/scripts/pg-cluster.sh" stop "$pgdir"' EXIT
    trap 'exit 130' INT TERM
    # The embedded cluster holds real data: keep fsync on.
    DATABASE_URL=$(FSYNC=on bash scripts/pg-cluster.sh start "$pgdir")
    export DATABASE_URL
    echo "run: embedded PostgreSQL at $pgdir ($DATABASE_URL)"
fi

"$fedagg" version
"$fedagg" migrate
