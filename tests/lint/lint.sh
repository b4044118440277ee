#!/usr/bin/env bash
# Lint suite: formatting, module layering, banned functions, the rejection table.
#   lint.sh format|layering|banned|rejections SOURCE_ROOT
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
    # Which modules each module may include (besides itself). Dependencies
    # point one way: api -> aggregator -> {privacy, model, store} -> core.
    declare -A allowed=(
        [core]="core"
        [store]="core store"
        [privacy]="core privacy"
        [model]="core model"
        [aggregator]="core privacy model store aggregator"
        [api]="core privacy model store aggregator api"
    )
    bad=0
    for mod in "${!allowed[@]}"; do
        for f in $(find "src/$mod" -name '*.[ch]' 2>/dev/null); do
            while IFS= read -r inc; do
                target=${inc%%/*}
                [ -n "${allowed[$target]+x}" ] || continue
                if [[ " ${allowed[$mod]} " != *" $target "* ]]; then
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
    echo "usage: $0 format|layering|banned|rejections SOURCE_ROOT" >&2
    exit 2
    ;;
esac
