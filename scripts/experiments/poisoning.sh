#!/usr/bin/env bash
# Poisoning at scale: the 50,000-device synthetic population of scale.sh
# (q = 0.2, about 10,000 devices per round, clip norm 0.1, in process) with a
# share of adversarial devices (fedagg simulate --attack): a boost attack
# that pushes one item (the target) into honest users' top 10, for each
# attacker share, each trust policy the server has, and with and without
# privacy noise (epsilon 8 over the planned rounds). Reports per run the
# honest users' HR@10 and the share of them with the target in their top 10
# at the last evaluated round.
#
#   scripts/experiments/poisoning.sh [OUT_DIR]
#
# Environment: FEDAGG, ROUNDS (default 100), PARALLEL (default 2),
# FRACTIONS (default "0 0.01 0.05 0.1"), POLICIES (default "none cosine"),
# TARGET (default 999, an item the population rarely chooses). About 5
# minutes a run on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/experiments/poisoning}
rounds=${ROUNDS:-100}
parallel=${PARALLEL:-2}
fractions=${FRACTIONS:-0 0.01 0.05 0.1}
policies=${POLICIES:-none cosine}
target=${TARGET:-999}
. "$root/scripts/experiments/lib.sh"
mkdir -p "$out"

q=0.2
delta=1e-5
population=(--users 50000 --items 1000 --positives 20 --seed 1)
recipe=(simulate --in-process --synthetic "${population[@]}"
        --rounds "$rounds" --parallel "$parallel" --eval-users 5000 --eval-every 20
        --optimizer sgd --lr 1 --batch 4096 --epochs 1
        --set sampling_rate=$q --set min_cohort=9600 --set clip_norm=0.1
        --set delta=$delta --set server_optimizer=fedadam --set server_lr=0.003
        --set server_tau=1e-6 --attack boost --attack-target "$target")
sigma=$(sigma_for 8 "$q" "$rounds" "$delta")

: >"$out/wall.txt"
for policy in $policies; do
    for f in $fractions; do
        run "nonoise-$policy-$f" "${recipe[@]}" --set trust_policy="$policy" \
            --attack-fraction "$f" --no-noise
        run "eps8-$policy-$f" "${recipe[@]}" --set trust_policy="$policy" \
            --attack-fraction "$f" --set noise_multiplier="$sigma" --set epsilon_max=8
    done
done

echo "| run | attackers per round | honest HR@10 | target in honest top 10 |"
echo "| --- | --- | --- | --- |"
for f in "$out"/*.jsonl; do
    python3 - "$f" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ev = [r for r in rows if r.get("hr10") is not None]
if not ev:
    sys.exit(0)
last = ev[-1]
att = sum(r.get("attackers", 0) for r in rows) / max(1, len(rows))
name = os.path.basename(sys.argv[1])[:-6]
print("| %s | %.0f | %.4f | %.4f |" % (name, att, last["hr10"], last.get("target_hr10") or 0.0))
PY
done
