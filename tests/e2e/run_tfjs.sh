#!/usr/bin/env bash
# e2e-tfjs: a real federation end to end. fedagg serve on a fresh database;
# 20 TensorFlow.js devices (clients/tfjs, one Node process) take part in 3
# rounds and the server publishes versions 1..3, each at its round's deadline; meanwhile the PyTorch
# serving tier (clients/python) polls and hot-swaps to each new version.
# Then version 3 is scored three ways, TF.js (from the TF.js JSON form), C
# (fa_ncf_predict on the safetensors form) and PyTorch, which must agree
# within 1e-5, and `fedagg ledger verify` must pass.
#
# Needs FA_TEST_PG (scripts/test.sh), node with clients/tfjs/node_modules,
# /usr/bin/python3 with torch; a missing one fails the test.
set -euo pipefail
E2E_NAME=${E2E_NAME:-e2e-tfjs}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
: "${E2E_SCORE:?E2E_SCORE (the e2e_score helper) is not set}"
devices=${E2E_DEVICES:-20}
rounds=${E2E_ROUNDS:-3}
# A round always runs to its deadline: 20 TF.js devices in one Node process
# post within about 3 to 9 s over HTTPS with tokens (more on a loaded
# machine), so rounds of 15 s hold them all (the test takes about three
# rounds).
round_s=${E2E_ROUND_S:-15}
# The model the server trains (E2E_MODEL=als runs the same federation on ALS).
model=${E2E_MODEL:-ncf}

e2e_require db node torch
e2e_init
e2e_create_db
# Devices authenticate (auth = jwt): a test issuer, one token per device.
e2e_issuer
e2e_tokens "$e2e_work/tokens.txt" tfjs-device $((devices + 1))
# ... over HTTPS: a test CA the Node devices and the Python serving tier trust.
e2e_tls
e2e_start_server FEDAGG_MODEL="$model" FEDAGG_NUM_ITEMS=50 FEDAGG_MIN_COHORT="$devices" FEDAGG_EPSILON_MAX=1000 \
    FEDAGG_ROUND_DEADLINE_S="$round_s" "${e2e_auth_env[@]}" "${e2e_tls_env[@]}"
case "$e2e_url" in https://*) ;; *) e2e_fail "the server does not speak HTTPS ($e2e_url)" ;; esac
export NODE_EXTRA_CA_CERTS="$e2e_ca" SSL_CERT_FILE="$e2e_ca"
e2e_log "fedagg serve at $e2e_url"

PYTHONDONTWRITEBYTECODE=1 e2e_background timeout 300 "${FA_PYTHON:-/usr/bin/python3}" \
    "$here/serving_check.py" --server "$e2e_url" --python-dir "$FA_SOURCE_ROOT/clients/python" \
    --version "$rounds" --case "$e2e_work/case.json" --out "$e2e_work/py.json" --timeout-s 240
serving_pid=${e2e_bg_pids[-1]}

e2e_run timeout 300 node "$here/devices.mjs" --server "$e2e_url" --out "$e2e_work" \
    --devices "$devices" --rounds "$rounds" --round-s "$round_s" --tokens "$e2e_work/tokens.txt" ||
    e2e_fail "the devices failed"
e2e_log "devices done"

e2e_run timeout 60 "$E2E_SCORE" "$e2e_work/model.safetensors" "$e2e_work/case.json" "$e2e_work/c.json" ||
    e2e_fail "the C scorer failed"
wait "$serving_pid" || e2e_fail "the serving tier failed"
e2e_log "serving tier done"

e2e_run timeout 60 node "$here/compare.mjs" "$e2e_work" 1e-5 || e2e_fail "TF.js, C and PyTorch disagree"

e2e_run env DATABASE_URL="$e2e_db" timeout 60 "$FEDAGG_BIN" ledger verify --key-dir "$e2e_work/keys" ||
    e2e_fail "fedagg ledger verify failed"
e2e_log "$E2E_NAME passed"
