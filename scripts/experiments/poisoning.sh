#!/usr/bin/env bash
# Poisoning at scale: the 50,000-device synthetic population of frontier.sh
# (q = 0.2, about 10,000 devices per round, in process, the default ALS
# recipe) with a share of adversarial devices (fedagg simulate --attack
# boost): each pushes the target along the direction that raises it for
# most users, with its whole norm on the target's row, or, against
# trust_policy = structure (the policy is public), as a well-formed update
# of a history of the target and the als_min_items - 1 rows after it;
# scaled by 10 (the clip takes it back to S). For each attacker share, each trust policy (none,
# cosine, structure) and with and without privacy noise (epsilon 8 over
# the planned rounds) it reports the honest users' HR@10 and the share of
# them with the target in their top 10 at the last round.
#
#   scripts/experiments/poisoning.sh [OUT_DIR]
#
# Environment: FEDAGG, ROUNDS (default 40), PARALLEL (default 2),
# FRACTIONS (default "0 0.01 0.05 0.1"), POLICIES (default "none cosine
# structure"), TARGET (default 999, an item the population rarely chooses),
# EXTRA (more --set options). About 20 s a run on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/experiments/poisoning}
rounds=${ROUNDS:-40}
parallel=${PARALLEL:-2}
fractions=${FRACTIONS:-0 0.01 0.05 0.1}
policies=${POLICIES:-none cosine structure}
target=${TARGET:-999}
read -r -a extra <<<"${EXTRA:-}"
. "$root/scripts/experiments/lib.sh"
mkdir -p "$out"

q=0.2
delta=1e-5
population=(--users 50000 --items 1000 --positives 20 --seed 1)
recipe=(simulate --in-process --synthetic "${population[@]}"
        --rounds "$rounds" --parallel "$parallel" --eval-users 5000 --eval-every "$rounds"
        --set sampling_rate=$q --set min_cohort=9600 --set delta=$delta
        --attack boost --attack-target "$target" "${extra[@]}")
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
