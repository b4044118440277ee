#!/usr/bin/env bash
# e2e-browser: the TF.js device client in a real browser. The client is
# bundled with esbuild, the example page (clients/tfjs/examples/browser) is
# served from localhost by its small Node server, which reverse-proxies
# /api/ to fedagg, and headless Chromium (Debian's, driven by
# playwright-core) runs one round in the page: check in, download, train,
# seal, post. The page must report the accepted update and the server must
# publish the version it produced (minimum cohort 1) at the round's deadline.
# Rounds of 5 s: a page that posts just too late for one is told
# round_closed and checks in to the next, as any device would.
#
# Needs FA_TEST_PG (scripts/test.sh), node with clients/tfjs/node_modules
# and tests/e2e/node_modules, /usr/bin/chromium; a missing one fails the test.
set -euo pipefail
E2E_NAME=e2e-browser
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
tfjs_dir=$FA_SOURCE_ROOT/clients/tfjs

e2e_require db node chromium
e2e_init
e2e_create_db
e2e_issuer
e2e_tokens "$e2e_work/tokens.txt" browser 1
e2e_start_server FEDAGG_NUM_ITEMS=50 FEDAGG_MIN_COHORT=1 FEDAGG_EPSILON_MAX=1000 \
    FEDAGG_ROUND_DEADLINE_S="${E2E_ROUND_S:-5}" "${e2e_auth_env[@]}"
e2e_log "fedagg serve at $e2e_url"

e2e_run timeout 120 "$tfjs_dir/node_modules/.bin/esbuild" "$tfjs_dir/src/index.js" --bundle --format=esm \
    --platform=browser --target=es2020 --log-level=warning --outfile="$e2e_work/fedagg-device.js" ||
    e2e_fail "bundling the client failed"
e2e_log "client bundled ($(du -k "$e2e_work/fedagg-device.js" | cut -f1) KiB)"

: >"$e2e_work/static.out"
e2e_background node "$tfjs_dir/examples/browser/serve.mjs" --api "$e2e_url" --port 0 \
    --bundle "$e2e_work/fedagg-device.js" >"$e2e_work/static.out" 2>&1
page=
for _ in $(seq 1 300); do
    page=$(sed -n 's/^serving \(http:[^ ]*\).*/\1/p' "$e2e_work/static.out" | head -n 1)
    [ -n "$page" ] && break
    kill -0 "${e2e_bg_pids[-1]}" 2>/dev/null || { cat "$e2e_work/static.out" >&2; e2e_fail "the page server exited"; }
    sleep 0.1
done
[ -n "$page" ] || e2e_fail "the page server did not start within 30 s"
e2e_log "page server at $page"

e2e_run timeout 240 node "$here/browser.mjs" --page "$page/?items=2,5,11,17,23,31,40,47&seed=7&token=$(head -n 1 "$e2e_work/tokens.txt")" --api "$e2e_url" \
    --out "$e2e_work" --chromium "${FA_CHROMIUM:-/usr/bin/chromium}" || e2e_fail "the browser run failed"
e2e_log "$E2E_NAME passed"
