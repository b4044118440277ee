#!/usr/bin/env bash
# Installs the Debian packages fedagg needs, only when something is missing
# (so a second run does not touch apt). Works as root or via sudo.
#   deps.sh run    build + run dependencies (server, embedded PostgreSQL)
#   deps.sh test   also the test toolchain (clang sanitizers/libFuzzer,
#                  clang-format, PyTorch and Node for the cross-checks,
#                  Chromium for the browser end-to-end test)
set -euo pipefail
mode=${1:-run}

pkgs=(meson ninja-build pkg-config gcc libc6-dev python3
      libmicrohttpd-dev libgnutls28-dev libjansson-dev libssl-dev libsodium-dev libpq-dev openssl
      libopenblas-dev libcurl4-openssl-dev postgresql-15 postgresql-client-15)
if [ "$mode" = test ]; then
    pkgs+=(libcriterion-dev clang libclang-rt-14-dev clang-format python3-torch python3-numpy
           python3-scipy python3-nacl git chromium)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
# Node.js: any installed node >= 18 will do; Debian's package otherwise.
if [ "$mode" = test ] && ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
    $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >&2
fi
