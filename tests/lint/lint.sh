#!/usr/bin/env bash
# Lint suite: formatting, module layering, library containment, banned
# functions, the rejection table.
#   lint.sh format|layering|containment|banned|rejections SOURCE_ROOT
set -euo pipefail
what=$1
cd "$2"

c_files() {
    local dirs=()
    for d in src tests bench clients; do [ -d "$d" ] && dirs+=("$d"); done
    find "${dirs[@]}" -name '*.[ch]' -not -path '*/node_modules/*' | sort
}

case "$what" in
format)
    command -v clang-format >/dev/null || { echo "clang-format is not installed"; exit 1; }
    c_files | xargs clang-format --dry-run -Werror
    ;;
layering)
    # Which folders of src/ each folder may include (besides itself).
    # Dependencies point one way: api -> aggregator -> {privacy, model,
    # store} -> core; above them the programs: cli -> sim -> device.
    # main.c, alone in src/, only dispatches and may include anything.
    declare -A allowed=(
        [core]="core"
        [store]="core store"
        [privacy]="core privacy"
        [model]="core model"
        [aggregator]="core privacy model store aggregator"
        [api]="core privacy model store aggregator api"
        [device]="core privacy model device"
        [sim]="core privacy model aggregator device sim"
        [cli]="core privacy model store aggregator api device sim cli"
    )
    bad=0
    edges=$(mktemp)
    trap 'rm -f "$edges"' EXIT
    for dir in src/*/; do
        mod=$(basename "$dir")
        if [ -z "${allowed[$mod]+x}" ]; then
            echo "src/$mod/ is not in the layering table of $0"
            bad=1
            continue
        fi
        for f in $(find "src/$mod" -name '*.[ch]'); do
            while IFS= read -r inc; do
                target=${inc%%/*}
                if [ "$target" = "$inc" ]; then
                    echo "$f includes \"$inc\": include by path from src/"
                    bad=1
                    continue
                fi
                [ "$target" = "$mod" ] || echo "$mod $target" >>"$edges"
                if [ -z "${allowed[$target]+x}" ]; then
                    echo "$f includes \"$inc\": $target is not a folder of src/"
                    bad=1
                elif [[ " ${allowed[$mod]} " != *" $target "* ]]; then
                    echo "$f includes \"$inc\": $mod may not depend on $target"
                    bad=1
                fi
                if [[ "$inc" == */internal.h && "$target" != "$mod" ]]; then
                    echo "$f includes \"$inc\": another module's internal header"
                    bad=1
                fi
            done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
        done
    done
    # The includes actually written, folder to folder, form no cycle (even
    # if the table above were to allow one).
    if ! sort -u "$edges" | tsort >/dev/null 2>"$edges.err"; then
        echo "a cycle between folders of src/:"
        grep -v '^tsort: -: input contains a loop:' "$edges.err" | sed 's/^tsort: /  /'
        bad=1
    fi
    rm -f "$edges.err"
    exit $bad
    ;;
containment)
    # Each outside library sits behind the module that owns it (STYLE.md):
    # a header of the library included anywhere else in src/ is an error.
    # The plain digest and base64 of core/ use libsodium and OpenSSL.
    declare -A owners=(
        ['openssl/']="src/privacy/ src/core/base64.c"
        ['sodium.h']="src/privacy/ src/core/digest.c src/core/base64.c"
        ['libpq-fe.h']="src/store/"
        ['microhttpd.h']="src/api/"
        ['gnutls/']="src/api/"
        ['cblas.h']="src/model/"
        ['curl/']="src/device/"
    )
    bad=0
    while IFS= read -r hit; do
        f=${hit%%:*}
        inc=$(sed -n 's/.*#include <\([^>]*\)>.*/\1/p' <<<"${hit#*:}")
        for lib in "${!owners[@]}"; do
            [[ "$inc" == "$lib"* ]] || continue
            ok=0
            for owner in ${owners[$lib]}; do
                [[ "$f" == "$owner"* ]] && ok=1
            done
            if [ $ok = 0 ]; then
                echo "$f includes <$inc>: that library belongs to ${owners[$lib]}"
                bad=1
            fi
        done
    done < <(grep -rnE '^#include <(openssl/|sodium\.h|libpq-fe\.h|microhttpd\.h|gnutls/|cblas\.h|curl/)' src | cut -d: -f1,3-)
    exit $bad
    ;;
banned)
    # Unbounded or unchecked libc calls; use snprintf, checked strtoll,
    # randombytes_buf instead.
    pattern='\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|atoll|strtok|rand|srand|gets)[[:space:]]*\('
    if c_files | xargs grep -nE "$pattern" | grep -vE '^\S+:[0-9]+:\s*(/\*|\*)'; then
        echo "banned function used (see above)"
        exit 1
    fi
    ;;
rejections)
    # Every error code: src/api/errors.c, docs/api.md and the sources agree.
    python3 "$(dirname "$0")/rejections.py" .
    ;;
*)
    echo "usage: $0 format|layering|containment|banned|rejections SOURCE_ROOT" >&2
    exit 2
    ;;
esac
