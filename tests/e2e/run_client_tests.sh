#!/usr/bin/env bash
# tfjs-client: the unit tests of clients/tfjs (node --test): update format
# and sealing, retries, the segment-sum kernel, snapshot decoding and local
# training on a snapshot written by `fedagg model init`. Fails when node or
# clients/tfjs/node_modules is missing.
set -euo pipefail
E2E_NAME=tfjs-client
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
e2e_require node
[ -x "${FEDAGG_BIN:-}" ] || e2e_fail "FEDAGG_BIN is not set or not executable"
cd "$FA_SOURCE_ROOT/clients/tfjs"
exec timeout 110 node --test --test-reporter=spec test/*.test.js
