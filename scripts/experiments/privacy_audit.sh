#!/usr/bin/env bash
# The empirical privacy audit of one round's release
# (tests/unit/aggregator/audit_test.c) with many more trials than the unit
# test's default: the real mechanism, half the noise, and the canary folded
# twice, each against the epsilon the accountant claims for the release.
#
#   scripts/experiments/privacy_audit.sh [OUT_DIR]
#
# Builds the aggregator's unit tests in BUILD (default build-audit, set up
# on first use), runs the three audit tests with FA_AUDIT_TRIALS trials per
# world, and writes their result lines and a Markdown table into OUT_DIR
# (default BUILD/experiments/privacy-audit), printing the table. Exits
# non-zero when an audit assertion fails. Environment: BUILD, TRIALS
# (default 2000000), JOBS (tests run at once, default 3). About a minute
# on 2 cores at the default (75 s of CPU); the time grows linearly with
# TRIALS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-audit}
out=${1:-$build/experiments/privacy-audit}
trials=${TRIALS:-2000000}
jobs=${JOBS:-3}

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$build" tests/unit/aggregator/test_aggregator >/dev/null
mkdir -p "$out"

t0=$SECONDS
status=0
FA_AUDIT_TRIALS=$trials "$build/tests/unit/aggregator/test_aggregator" --filter 'audit/*' \
    -j "$jobs" 2>"$out/audit.log" || status=$?
wall=$((SECONDS - t0))
grep '^audit ' "$out/audit.log" | sort >"$out/audit.txt"
tail -n 1 "$out/audit.log" >&2

python3 - "$out/audit.txt" "$wall" <<'EOF' | tee "$out/table.md"
import sys

rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[1])]
order = {"real": 0, "half-noise": 1, "double-weight": 2}
rows.sort(key=lambda r: order.get(r["mechanism"], 9))
r0 = rows[0]
print(f"trials per world {int(r0['trials']):,}, sigma {r0['sigma']}, delta {r0['delta']}, "
      f"confidence {r0['confidence']} (Bonferroni over {r0['thresholds']} thresholds), "
      f"wall {sys.argv[2]} s")
print()
print("| mechanism | claimed epsilon | empirical lower bound | threshold (noise sd) | FP | FN | seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['mechanism']} | {float(r['claimed_eps']):.3f} | {float(r['eps_lb']):.3f} | "
          f"{r['at_g']} | {r['fp']} | {r['fn']} | {float(r['seconds']):.0f} |")
EOF
exit "$status"
