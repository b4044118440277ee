#!/usr/bin/env bash
# The MovieLens-100K recipe over HTTP against a real server and PostgreSQL,
# and the same configuration in process: the two must print the same
# numbers and end with the same model (up to float summation order).
#
# The server cannot run the non-private baseline (its smallest noise
# multiplier is 0.3), so this run uses the default recipe with the least
# noise the server allows, seeded noise (test mode) and a fixed cohort of 100
# devices per round (q = 1: the simulator picks the same devices in both
# modes). A round always runs to its deadline: the 100 devices of a round
# post within about 2.5 s here, so rounds last ROUND_S = 5 s (all of a
# round's devices must make it for the two modes to agree).
#
#   scripts/experiments/ml100k-http.sh [OUT_DIR]
#
# Environment: FEDAGG, DATA, ROUNDS (default 40), PARALLEL (default 2),
# ROUND_S (default 5).
# Needs PostgreSQL 15 (scripts/pg-cluster.sh); the database grows by about
# 55 MB per round (the stored sealed updates).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FEDAGG:-$root/build/src/fedagg}
data=${DATA:-$root/../shared/data/ml-100k}
out=${1:-$root/build/experiments/ml100k-http}
rounds=${ROUNDS:-40}
parallel=${PARALLEL:-2}
round_s=${ROUND_S:-5}
mkdir -p "$out"
work=$(mktemp -d /tmp/fedagg-http-exp.XXXXXX)
chmod 755 "$work" # the postgres OS user must reach the cluster inside
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    bash "$root/scripts/pg-cluster.sh" destroy "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL
DATABASE_URL=$(bash "$root/scripts/pg-cluster.sh" start "$work/pg")
"$bin" keygen --out "$work/keys" >/dev/null
"$bin" migrate >/dev/null
export FEDAGG_KEY_DIR="$work/keys" FEDAGG_PORT=0 FEDAGG_LOG_LEVEL=warn FEDAGG_MODEL=ncf \
    FEDAGG_NUM_ITEMS=1682 FEDAGG_MIN_COHORT=100 FEDAGG_SAMPLING_RATE=1 \
    FEDAGG_NOISE_MULTIPLIER=0.3 FEDAGG_EPSILON_MAX=10000 FEDAGG_ROUND_DEADLINE_S="$round_s" \
    FEDAGG_NOISE_SEED=5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed \
    FEDAGG_INSECURE_SEEDED_NOISE=1 FEDAGG_RATE_LIMIT_PER_S=0 # all devices on this host
"$bin" serve >"$work/serve.out" 2>"$out/serve.log" &
server_pid=$!
for _ in $(seq 300); do
    grep -q "listening on" "$work/serve.out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/.*listening on //p' "$work/serve.out" | head -n 1)
[ -n "$url" ] || { echo "the server did not start" >&2; cat "$out/serve.log" >&2; exit 1; }

devices=(--data "$data" --rounds "$rounds" --cohort 100 --parallel "$parallel" --seed 1
         --eval-every 10 --eval-initial)
t0=$SECONDS
"$bin" simulate --server "$url" "${devices[@]}" >"$out/http.jsonl"
echo "http: $((SECONDS - t0)) s" | tee "$out/wall.txt"
"$bin" ledger verify --key-dir "$work/keys" | tee "$out/ledger.txt"
curl -sf "$url/api/federated/model/$rounds.safetensors" -o "$out/http-model.safetensors"

t0=$SECONDS
"$bin" simulate --in-process "${devices[@]}" --save-model "$out/local-model.safetensors" \
    >"$out/local.jsonl"
echo "in process: $((SECONDS - t0)) s" | tee -a "$out/wall.txt"

python3 - "$out" <<'PY'
import json, struct, sys
d = sys.argv[1]
def rows(name):
    return [{k: v for k, v in json.loads(l).items() if k != "seconds"}
            for l in open(f"{d}/{name}.jsonl") if l.startswith("{")]
def floats(name):
    b = open(f"{d}/{name}", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return struct.unpack("<%df" % ((len(b) - 8 - n) // 4), b[8 + n:])
a, b = rows("http"), rows("local")
same = sum(x == y for x, y in zip(a, b))
x, y = floats("http-model.safetensors"), floats("local-model.safetensors")
worst = max(abs(p - q) for p, q in zip(x, y))
print(f"round lines identical (all but seconds): {same} of {len(a)}")
print(f"final model: {len(x)} parameters, largest difference {worst:.3g}")
for r in a:
    if r["hr10"] is not None:
        print(f"| {r['round']} | {r['hr10']:.4f} | {r['ndcg10']:.4f} | {r['epsilon']:.4g} |")
PY
