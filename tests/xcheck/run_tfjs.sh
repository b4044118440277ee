#!/bin/sh
# Cross-check against TensorFlow.js 4.22: xcheck_dump writes the TF.js
# snapshot in both forms, then js/check.mjs loads them with
# tf.loadLayersModel(tf.io.fromMemory(...)) and compares predictions. Needs
# node and tests/xcheck/js/node_modules (run `npm ci` in tests/xcheck/js); a
# missing runtime fails the test instead of skipping it.
set -eu
dump=$1 jsdir=$2
if ! command -v node >/dev/null 2>&1; then
    echo "xcheck-tfjs: node is not installed" >&2
    exit 1
fi
if [ ! -d "$jsdir/node_modules/@tensorflow/tfjs" ]; then
    echo "xcheck-tfjs: $jsdir/node_modules is missing (run: cd $jsdir && npm ci)" >&2
    exit 1
fi
work=$(mktemp -d /tmp/fa-xcheck-tfjs.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$dump" "$work"
node "$jsdir/check.mjs" "$work"
