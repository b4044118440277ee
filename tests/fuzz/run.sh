#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a scratch copy of its corpus
# (libFuzzer writes new inputs into its first corpus directory; the source
# tree must stay untouched). A crash leaves its input in the scratch dir and
# fails the test; add that input to the corpus with the fix.
set -euo pipefail
bin=$1 corpus=$2 seconds=${3:-20}
work=$(mktemp -d /tmp/fa-fuzz.XXXXXX)
cp -r "$corpus"/. "$work"/
cd "$work"
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work"
rm -rf "$work"
