#!/bin/sh
# Model training throughput: the C centralized trainer against PyTorch (CPU)
# on the same model, data size, batch size and one thread each, measured in
# the same run. Prints each side's JSON line and then the ratio:
#   {"bench":"model-train","c_samples_per_s":...,"torch_samples_per_s":...,"ratio":...}
# Usage: run.sh BENCH_TRAIN TORCH_SCRIPT [DATA_DIR] (synthetic data when the
# directory is missing). Needs /usr/bin/python3 with torch and numpy.
set -eu
bench=$1 script=$2 data=${3:-}
py=${FA_PYTHON:-/usr/bin/python3}
epochs=${FA_BENCH_EPOCHS:-2}
batch=${FA_BENCH_BATCH:-256}

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Both sides use the same OpenBLAS; when it does not know this CPU, select the
# matching kernels for both (it reads the variable when it is loaded).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    ct=$("$bench" --suggest-coretype)
    if [ -n "$ct" ]; then
        export OPENBLAS_CORETYPE="$ct"
    fi
fi
set --
if [ -n "$data" ] && [ -f "$data/loo_train.tsv" ]; then
    set -- --data "$data"
fi

c_line=$("$bench" "$@" --epochs "$epochs" --batch "$batch")
echo "$c_line"
t_line=$("$py" "$script" "$@" --epochs "$epochs" --batch "$batch")
echo "$t_line"
"$py" - "$c_line" "$t_line" "${OPENBLAS_CORETYPE:-auto}" <<'PY'
import json, sys
c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({
    "bench": "model-train",
    "c_samples_per_s": c["samples_per_s"],
    "torch_samples_per_s": t["samples_per_s"],
    "ratio": round(c["samples_per_s"] / t["samples_per_s"], 2),
    "batch": c["batch"],
    "threads": 1,
    "openblas_coretype": sys.argv[3],
    "data": c["data"],
}))
PY
