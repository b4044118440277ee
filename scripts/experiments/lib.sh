# Shared by the experiment scripts (sourced): the binary, the output folder,
# one timed run into OUT/NAME.jsonl, and the noise multiplier the server's
# accountant calibrates for a target epsilon.
#
# Callers set: root (repository root) and out (output folder).
bin=${FEDAGG:-$root/build/src/fedagg}

# run NAME fedagg-arguments...: stdout to $out/NAME.jsonl, wall time to $out/wall.txt
run() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name" >&2
    "$bin" "$@" >"$out/$name.jsonl"
    echo "$name: $((SECONDS - t0)) s" >>"$out/wall.txt"
}

# sigma_for EPSILON Q ROUNDS DELTA: prints the noise multiplier that spends
# exactly EPSILON over ROUNDS rounds at sampling rate Q.
sigma_for() {
    "$bin" privacy noise-multiplier --epsilon "$1" --sampling-rate "$2" --rounds "$3" \
        --delta "$4" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["noise_multiplier"])'
}
