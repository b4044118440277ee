#!/usr/bin/env bash
# e2e-audit: the privacy audit page fedagg serves at /privacy/, in Debian's
# headless Chromium. fedagg serve on a fresh database (minimum cohort 2,
# rounds of 2 s, sigma 1, budget epsilon 9 at delta 1e-5: three releases
# fit, a fourth does not); `fedagg simulate --server` runs 4 rounds of 2
# devices over HTTP, so the ledger holds releases, a refusal and the
# abandoned rounds in between. Then audit.mjs checks the page against the
# server (verdict, release count, epsilon, plot, table, download; tampered
# ledgers flagged at the right entry; pinned keys), and the independent
# verifier must accept the ledger the page downloaded with the server's
# epsilon.
#
# Needs FA_TEST_PG (scripts/test.sh), node with tests/e2e/node_modules,
# /usr/bin/chromium, /usr/bin/python3 with numpy, scipy and nacl.
set -euo pipefail
E2E_NAME=e2e-audit
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

e2e_require db chromium
e2e_init
e2e_create_db
e2e_issuer
e2e_start_server FEDAGG_NUM_ITEMS=200 FEDAGG_MIN_COHORT=2 FEDAGG_ROUND_DEADLINE_S=2 \
    FEDAGG_NOISE_MULTIPLIER=1 FEDAGG_EPSILON_MAX=9 FEDAGG_DELTA=1e-5 FEDAGG_SAMPLING_RATE=1 \
    "${e2e_auth_env[@]}"
e2e_log "fedagg serve at $e2e_url"

e2e_run timeout 120 "$FEDAGG_BIN" simulate --server "$e2e_url" --synthetic --users 20 --items 200 --positives 10 \
    --rounds 4 --cohort 2 --parallel 2 --seed 3 --eval-every 4 \
    --auth-key "$e2e_work/issuer/issuer.sk" --auth-issuer https://id.e2e.test \
    >"$e2e_work/simulate.out" 2>"$e2e_work/simulate.log" &&
    e2e_fail "the fourth round was released: it should not fit the budget"
# simulate stops with this message when the budget refuses a round.
grep -q "round 4 refused" "$e2e_work/simulate.log" ||
    { cat "$e2e_work/simulate.log" >&2; e2e_fail "fedagg simulate failed"; }
e2e_log "4 rounds simulated, the fourth refused"

# Rounds of 2 s keep ending (abandoned, nobody posts): restart the server
# with hour-long rounds so the ledger holds still while the page is checked.
kill -TERM "$e2e_server_pid"
wait "$e2e_server_pid" 2>/dev/null || true
e2e_restart_server FEDAGG_NUM_ITEMS=200 FEDAGG_MIN_COHORT=2 FEDAGG_ROUND_DEADLINE_S=3600 \
    FEDAGG_NOISE_MULTIPLIER=1 FEDAGG_EPSILON_MAX=9 FEDAGG_DELTA=1e-5 FEDAGG_SAMPLING_RATE=1 \
    "${e2e_auth_env[@]}"
# The round open at the restart ends at its old deadline; the next one lasts an hour.
for _ in $(seq 1 100); do
    deadline=$(curl -sf "$e2e_url/api/federated/round" | sed -n 's/.*"deadline":\([0-9.e+]*\).*/\1/p')
    [ -n "$deadline" ] && awk -v d="$deadline" -v t="$(date +%s)" 'BEGIN { exit !(d > t + 600) }' && break
    sleep 0.2
done
e2e_log "restarted with hour-long rounds at $e2e_url"

key=$(tr -d '[:space:]' <"$e2e_work/keys/sign.pk")
e2e_run timeout 240 node "$here/audit.mjs" --server "$e2e_url" --key "$key" --out "$e2e_work" \
    --chromium "${FA_CHROMIUM:-/usr/bin/chromium}" || e2e_fail "the audit page failed"

# The page's download is a complete ledger: the independent verifier
# accepts it and finds the server's epsilon.
PYTHONDONTWRITEBYTECODE=1 e2e_run timeout 120 "${FA_PYTHON:-/usr/bin/python3}" \
    "$FA_SOURCE_ROOT/clients/python/fedagg_verify.py" "$e2e_work/downloaded-ledger.json" \
    --public-key "$e2e_work/keys/sign.pk" --json >"$e2e_work/verify.json" ||
    { cat "$e2e_work/verify.json" >&2; e2e_fail "the independent verifier rejected the downloaded ledger"; }
served=$(curl -sf "$e2e_url/api/privacy/budget") || e2e_fail "GET /api/privacy/budget failed"
"${FA_PYTHON:-/usr/bin/python3}" - "$e2e_work/verify.json" "$served" <<'PY' || e2e_fail "the verifier's epsilon is not the server's"
import json, sys
rep = json.load(open(sys.argv[1]))
srv = json.loads(sys.argv[2])
eps = rep.get("stated_epsilon", rep.get("epsilon"))
assert rep["entries"] == srv["entries"], (rep["entries"], srv["entries"])
assert abs(eps - srv["epsilonSpent"]) <= 1e-6 * srv["epsilonSpent"], (eps, srv["epsilonSpent"])
print("independent verifier: %d entries, epsilon %r" % (rep["entries"], eps))
PY
e2e_log "$E2E_NAME passed"
