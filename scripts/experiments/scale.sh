#!/usr/bin/env bash
# Privacy-utility at scale of the NCF model (model = ncf; the previous
# default, kept for reference; frontier.sh measures the default ALS model):
# a synthetic population of 50,000 devices (the
# planted latent-factor model of `fedagg synth`), Poisson sampling with
# q = 0.2 (about 10,000 devices per round; a round below the minimum cohort
# of 9,600, 4.5 standard deviations under the mean, would be abandoned as at
# the server), 200 rounds, in process, with the default recipe except one
# local epoch (twice as fast) and clip norm 0.1. For each target epsilon the
# noise multiplier is calibrated by the server's accountant for the planned
# rounds at that q, and the budget is enforced.
#
#   scripts/experiments/scale.sh [OUT_DIR]
#
# Writes one JSON-lines file per run into OUT_DIR (default
# build/experiments/scale), prints the table of docs/results.md and writes
# OUT_DIR/curve.dat for scripts/experiments/plot.sh. Environment: FEDAGG,
# ROUNDS (default 200), PARALLEL (default 2), EPSILONS (default
# "0.5 1 2 4 8"). About an hour on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/experiments/scale}
rounds=${ROUNDS:-200}
parallel=${PARALLEL:-2}
epsilons=${EPSILONS:-0.5 1 2 4 8}
. "$root/scripts/experiments/lib.sh"
mkdir -p "$out"

q=0.2
delta=1e-5
population=(--users 50000 --items 1000 --positives 20 --seed 1)
recipe=(simulate --in-process --synthetic "${population[@]}"
        --rounds "$rounds" --parallel "$parallel" --eval-users 5000 --eval-every 20
        --eval-initial --optimizer sgd --lr 1 --batch 4096 --epochs 1
        --set sampling_rate=$q --set min_cohort=9600 --set clip_norm=0.1
        --set delta=$delta --set server_optimizer=fedadam --set server_lr=0.003
        --set server_tau=1e-6 --set model=ncf)

: >"$out/wall.txt"
# The same population on disk, for the popularity baseline.
"$bin" synth --out "$out/data" "${population[@]}" >/dev/null
python3 "$root/scripts/experiments/popularity.py" "$out/data" >"$out/popularity.json"
run nonoise "${recipe[@]}" --no-noise
for eps in $epsilons; do
    sigma=$(sigma_for "$eps" "$q" "$rounds" "$delta")
    echo "sigma $sigma" >"$out/eps$eps.sigma"
    run "eps$eps" "${recipe[@]}" --set noise_multiplier="$sigma" --set epsilon_max="$eps"
done
python3 "$root/scripts/experiments/summarize.py" scale "$out"
