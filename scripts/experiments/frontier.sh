#!/usr/bin/env bash
# The privacy-utility frontier of the default recipe (model = als): HR@10 and
# NDCG@10 at epsilon 0.5, 1, 2, 4, 8 and without noise, in process, each run
# with sigma calibrated by the server's accountant for its planned rounds
# and the budget enforced, next to the population's popularity level and a
# non-private full-participation level (plain ALS, every device in each of
# 10 rounds, no noise).
#
#   scripts/experiments/frontier.sh POP [OUT_DIR]
#
# POP is one of
#   50k     50,000 synthetic devices (fedagg synth --users 50000 --items 1000
#           --positives 20 --seed 1), q = 0.2, delta 1e-5
#   1m      1,000,000 synthetic devices (--users 1000000 --items 1000
#           --positives 20 --seed 1), q = 0.02, delta 1e-7
#   ml100k  MovieLens-100K (943 devices; DATA, default ../shared/data/ml-100k),
#           q = 1, delta 1e-5
# Environment: FEDAGG, ROUNDS (default 40), PARALLEL (default 2), EPSILONS
# (default "0.5 1 2 4 8"), EXTRA (more --set options for every run).
# Prints a markdown table; OUT_DIR (default build/experiments/frontier-POP)
# keeps one JSON-lines file per run, wall.txt, and curve.dat and levels.dat
# for scripts/experiments/plot_frontier.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pop=${1:?usage: frontier.sh 50k|1m|ml100k [OUT_DIR]}
out=${2:-$root/build/experiments/frontier-$pop}
rounds=${ROUNDS:-40}
parallel=${PARALLEL:-2}
epsilons=${EPSILONS:-0.5 1 2 4 8}
read -r -a extra <<<"${EXTRA:-}"
. "$root/scripts/experiments/lib.sh"
mkdir -p "$out"

case $pop in
50k)
    q=0.2 delta=1e-5 min=9600 users=50000
    population=(--synthetic --users 50000 --items 1000 --positives 20 --seed 1)
    ;;
1m)
    q=0.02 delta=1e-7 min=19400 users=1000000
    population=(--synthetic --users 1000000 --items 1000 --positives 20 --seed 1)
    ;;
ml100k)
    q=1 delta=1e-5 min=900 users=943
    population=(--data "${DATA:-$root/../shared/data/ml-100k}")
    ;;
*)
    echo "frontier.sh: unknown population $pop" >&2
    exit 2
    ;;
esac
recipe=(simulate --in-process "${population[@]}" --rounds "$rounds" --parallel "$parallel"
        --eval-users 5000 --eval-every "$rounds" --set sampling_rate=$q --set min_cohort=$min
        --set delta=$delta "${extra[@]}")

: >"$out/wall.txt"
if [ "$pop" != ml100k ]; then
    [ -f "$out/data/loo_train.tsv" ] || "$bin" synth --out "$out/data" "${population[@]:1}" >/dev/null
    data=$out/data
else
    data=${DATA:-$root/../shared/data/ml-100k}
fi
python3 "$root/scripts/experiments/popularity.py" "$data" >"$out/popularity.json"
# Plain ALS with every device in every round, 10 rounds: the level without
# sampling or noise (FULL=0 skips it: at 1,000,000 devices a round takes
# about two minutes here).
[ "${FULL:-1}" = 0 ] || run full "${recipe[@]}" --rounds 10 --eval-every 10 --set sampling_rate=1 --set min_cohort=$users \
    --set max_cohort=$((users + 1)) --set als_step=1 --no-noise
run nonoise "${recipe[@]}" --no-noise
for eps in $epsilons; do
    sigma=$(sigma_for "$eps" "$q" "$rounds" "$delta")
    echo "$sigma" >"$out/eps$eps.sigma"
    run "eps$eps" "${recipe[@]}" --set noise_multiplier="$sigma" --set epsilon_max="$eps"
done

python3 - "$out" "$epsilons" <<'PY'
import json, os, sys
out, epsilons = sys.argv[1], sys.argv[2].split()
def last(name):
    rows = [json.loads(l) for l in open(os.path.join(out, name + ".jsonl")) if l.startswith("{")]
    ev = [r for r in rows if r.get("hr10") is not None]
    cohort = sum(r["cohort"] for r in rows) / max(1, len(rows))
    return ev[-1], cohort
wall = dict(l.strip().split(": ") for l in open(os.path.join(out, "wall.txt")) if ": " in l)
pop = json.load(open(os.path.join(out, "popularity.json")))
print("| run | sigma | epsilon spent | HR@10 | NDCG@10 | mean cohort | seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
full = os.path.exists(os.path.join(out, "full.jsonl"))
for name in (["full"] if full else []) + ["nonoise"] + ["eps" + e for e in epsilons]:
    r, c = last(name)
    sig = "-"
    if name.startswith("eps"):
        sig = "%.4g" % float(open(os.path.join(out, name + ".sigma")).read())
    print("| %s | %s | %s | %.4f | %.4f | %.0f | %s |" % (name, sig, r["epsilon"], r["hr10"],
          r["ndcg10"], c, wall.get(name, "?").replace(" s", "")))
print("| popularity | - | - | %.4f | %.4f | - | - |" % (pop["hr10"], pop["ndcg10"]))
# For plot_frontier.sh: epsilon HR@10 NDCG@10 per private run, then the levels.
with open(os.path.join(out, "curve.dat"), "w") as f:
    for e in epsilons:
        r, _ = last("eps" + e)
        f.write("%s %.4f %.4f\n" % (e, r["hr10"], r["ndcg10"]))
with open(os.path.join(out, "levels.dat"), "w") as f:
    f.write("%.4f %.4f %.4f\n" % (last("nonoise")[0]["hr10"],
            last("full")[0]["hr10"] if full else float("nan"), pop["hr10"]))
PY
