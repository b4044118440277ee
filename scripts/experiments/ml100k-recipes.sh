#!/usr/bin/env bash
# The alternatives the default recipe of docs/results.md was chosen against,
# on MovieLens-100K in process: each run changes one choice of the recipe
# (without noise, 300 rounds), and the clip norm is varied at epsilon 8.
#
#   scripts/experiments/ml100k-recipes.sh [OUT_DIR]
#
# Environment: FEDAGG (binary), DATA (default ../shared/data/ml-100k),
# PARALLEL (default 2). About 20 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${DATA:-$root/../shared/data/ml-100k}
out=${1:-$root/build/experiments/ml100k-recipes}
parallel=${PARALLEL:-2}
. "$root/scripts/experiments/lib.sh"
mkdir -p "$out"
: >"$out/wall.txt"

# The NCF defaults (device recipe of fedagg simulate, server keys of fedagg
# serve) with the sampling of ml100k.sh.
base=(simulate --in-process --data "$data" --rounds 300 --parallel "$parallel" --seed 1
      --eval-every 20 --set sampling_rate=0.2 --set min_cohort=135 --set delta=1e-5
      --set model=ncf)
run default "${base[@]}" --no-noise
run device-adam "${base[@]}" --no-noise --optimizer adam --lr 0.03 --epochs 1
run device-minibatch "${base[@]}" --no-noise --lr 0.1 --batch 64 --epochs 1
run server-fedavg "${base[@]}" --no-noise --set server_optimizer=fedavg --set server_lr=1
run server-fedavg-lr10 "${base[@]}" --no-noise --set server_optimizer=fedavg --set server_lr=10
run server-fedyogi "${base[@]}" --no-noise --set server_optimizer=fedyogi
run server-tau1e-3 "${base[@]}" --no-noise --set server_tau=1e-3

# The clip norm under noise: epsilon 8 over 400 rounds, as in ml100k.sh.
sigma=$(sigma_for 8 0.2 400 1e-5)
for clip in 0.1 0.25 0.5 1; do
    run "eps8-clip$clip" "${base[@]}" --rounds 400 --set noise_multiplier="$sigma" \
        --set epsilon_max=8 --set clip_norm="$clip"
done
python3 "$root/scripts/experiments/summarize.py" recipes "$out"
