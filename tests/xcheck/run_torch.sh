#!/bin/sh
# Cross-check against PyTorch: xcheck_dump writes a model and a batch, then
# torch_check.py recomputes everything with torch autograd through the
# serving-tier loader. Needs /usr/bin/python3 with torch (Debian
# python3-torch); a missing runtime fails the test instead of skipping it.
set -eu
dump=$1 script=$2 loader_dir=$3
py=${FA_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
    echo "xcheck-torch: $py cannot import torch (apt-get install python3-torch)" >&2
    exit 1
fi
work=$(mktemp -d /tmp/fa-xcheck-torch.XXXXXX)
trap 'rm -rf "$work"' EXIT
export PYTHONDONTWRITEBYTECODE=1
"$dump" "$work"
"$py" "$script" "$work" "$loader_dir"
