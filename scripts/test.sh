#!/usr/bin/env bash
# The test command: installs what is missing, builds a normal and an
# ASan+UBSan build, starts a throwaway PostgreSQL 15 (always stopped again),
# runs every suite on both builds, then runs each fuzz target for a bounded
# time in a libFuzzer build. Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/deps.sh test || exit 1

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

pgdir=$(mktemp -d /tmp/fedagg-test-pg.XXXXXX)
# Every cluster started from here on (tests start their own for outages and
# restarts) is listed, and stopped at the end if a test that failed or timed
# out left it running.
export FA_CLUSTER_REGISTRY=$pgdir.clusters
cleanup() {
    local d
    if [ -f "$FA_CLUSTER_REGISTRY" ]; then
        sort -u "$FA_CLUSTER_REGISTRY" | while IFS= read -r d; do
            [ "$d" != "$pgdir" ] && [ -f "$d/data/postmaster.pid" ] || continue
            echo "test: stopping the PostgreSQL a test left running in $d" >&2
            bash "$root/scripts/pg-cluster.sh" destroy "$d" >/dev/null 2>&1 || true
        done
        rm -f "$FA_CLUSTER_REGISTRY"
    fi
    bash "$root/scripts/pg-cluster.sh" destroy "$pgdir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FA_TEST_PG=$(bash scripts/pg-cluster.sh start "$pgdir") || { echo "test: PostgreSQL did not start" >&2; exit 1; }
export FA_TEST_PG

failed=0
passed_total=0
failed_total=0

# Prints the Criterion summaries of one build and adds up its results.
report() {
    local dir=$1 name=$2
    grep -h 'Synthesis' "$dir/meson-logs/testlog.txt" 2>/dev/null | sed "s/^/[$name] /"
    local counts
    counts=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL", "SKIP"):
            ok += 1
        else:
            bad += 1
except FileNotFoundError:
    bad += 1
print(ok, bad)
PY
)
    passed_total=$((passed_total + ${counts% *}))
    failed_total=$((failed_total + ${counts#* }))
}

run_build() {
    local dir=$1 name=$2; shift 2
    echo "=== $name build ($dir)"
    if [ ! -f "$dir/build.ninja" ]; then
        "$@" "$dir" -Dwerror=true >/dev/null || { echo "$name: meson setup failed"; failed=1; return; }
    fi
    ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { cat "$dir.ninja.log"; echo "$name: build failed"; failed=1; failed_total=$((failed_total + 1)); return; }
    if ! meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 $MESON_TEST_ARGS; then
        failed=1
    fi
    report "$dir" "$name"
}

MESON_TEST_ARGS="--no-suite fuzz-long"
for js in tests/xcheck/js clients/tfjs tests/e2e; do
    if [ -f $js/package-lock.json ] && [ ! -d $js/node_modules ]; then
        (cd $js && npm ci --no-audit --no-fund --loglevel=error) || failed=1
    fi
done

run_build build normal meson setup
CC=clang run_build build-san sanitizer meson setup -Db_sanitize=address,undefined -Db_lundef=false
MESON_TEST_ARGS="--suite fuzz"
CC=clang run_build build-fuzz fuzz meson setup -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false

echo
echo "fedagg: $passed_total passed, $failed_total failed"
[ $failed = 0 ] && [ $failed_total = 0 ]
