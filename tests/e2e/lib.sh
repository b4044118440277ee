# Shared by the end-to-end scripts (sourced, bash): checks that the runtimes
# are there (a missing one fails the test, it never skips), makes a work
# directory and a fresh migrated database in the throwaway cluster of
# FA_TEST_PG, starts `fedagg serve` on a free port, and always stops
# whatever it started (server, background helpers) and drops the database.
#
# Set by meson: FEDAGG_BIN, FA_SOURCE_ROOT, PG_BINDIR; by the test command:
# FA_TEST_PG. E2E_KEEP=1 keeps the work directory for a look afterwards.

: "${FA_SOURCE_ROOT:?FA_SOURCE_ROOT is not set (run through meson test)}"
e2e_t0=$(date +%s.%N)
e2e_work=
e2e_db=
e2e_dbname=
e2e_server_pid=
e2e_bg_pids=()
e2e_auth_env=()
e2e_tls_env=()
e2e_ca=

e2e_fail() {
    echo "$E2E_NAME: $*" >&2
    exit 1
}

# Seconds since the script started, e.g. "12.3".
e2e_elapsed() {
    awk -v a="$e2e_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

e2e_log() {
    echo "[$(e2e_elapsed) s] $*"
}

# psql with a timeout; the cluster's own client when meson names its bindir.
e2e_psql() {
    local psql=psql
    [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/psql" ] && psql=$PG_BINDIR/psql
    timeout 60 "$psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# e2e_require node|torch|chromium|db ...: fails with what to install.
e2e_require() {
    local what
    for what in "$@"; do
        case "$what" in
        node)
            command -v node >/dev/null 2>&1 || e2e_fail "node is not installed (apt-get install nodejs npm)"
            [ -d "$FA_SOURCE_ROOT/clients/tfjs/node_modules/@tensorflow/tfjs" ] &&
                [ -d "$FA_SOURCE_ROOT/clients/tfjs/node_modules/libsodium-wrappers" ] ||
                e2e_fail "clients/tfjs/node_modules is missing (run: cd clients/tfjs && npm ci)"
            ;;
        torch)
            "${FA_PYTHON:-/usr/bin/python3}" -c 'import torch' >/dev/null 2>&1 ||
                e2e_fail "${FA_PYTHON:-/usr/bin/python3} cannot import torch (apt-get install python3-torch)"
            ;;
        chromium)
            [ -x "${FA_CHROMIUM:-/usr/bin/chromium}" ] ||
                e2e_fail "${FA_CHROMIUM:-/usr/bin/chromium} is missing (apt-get install chromium)"
            [ -d "$FA_SOURCE_ROOT/tests/e2e/node_modules/playwright-core" ] ||
                e2e_fail "tests/e2e/node_modules is missing (run: cd tests/e2e && npm ci)"
            [ -x "$FA_SOURCE_ROOT/clients/tfjs/node_modules/.bin/esbuild" ] ||
                e2e_fail "esbuild is missing in clients/tfjs/node_modules (run: cd clients/tfjs && npm ci)"
            ;;
        db)
            [ -n "${FA_TEST_PG:-}" ] || e2e_fail "FA_TEST_PG is not set: run through scripts/test.sh"
            [ -x "${FEDAGG_BIN:-}" ] || e2e_fail "FEDAGG_BIN is not set or not executable"
            ;;
        esac
    done
}

e2e_cleanup() {
    local pid i
    for pid in "${e2e_bg_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -n "$e2e_server_pid" ] && kill -0 "$e2e_server_pid" 2>/dev/null; then
        kill -TERM "$e2e_server_pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$e2e_server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$e2e_server_pid" 2>/dev/null || true
    fi
    for pid in "${e2e_bg_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "$e2e_dbname" ]; then
        e2e_psql "$FA_TEST_PG" -c "DROP DATABASE IF EXISTS $e2e_dbname" >/dev/null 2>&1 || true
    fi
    if [ -n "$e2e_work" ]; then
        if [ "${E2E_KEEP:-0}" = 1 ]; then
            echo "$E2E_NAME: work directory kept: $e2e_work"
        else
            rm -rf "$e2e_work"
        fi
    fi
}

# Prints the end of the server's log when the test fails.
e2e_on_exit() {
    local rc=$?
    if [ $rc -ne 0 ] && [ -n "$e2e_work" ] && [ -s "$e2e_work/server.log" ]; then
        echo "--- last lines of the fedagg log" >&2
        tail -n 30 "$e2e_work/server.log" >&2
    fi
    e2e_cleanup
    exit $rc
}

e2e_init() {
    e2e_work=$(mktemp -d "/tmp/fa-$E2E_NAME.XXXXXX")
    trap e2e_on_exit EXIT
    trap 'exit 130' INT TERM
}

# Runs a helper in the background; it is killed on exit.
e2e_background() {
    "$@" &
    e2e_bg_pids+=($!)
}

# Runs a step and waits for it. Unlike a foreground command, `wait` returns
# as soon as a signal arrives, so an interrupted test cleans up at once.
e2e_run() {
    "$@" &
    e2e_bg_pids+=($!)
    wait $!
}

# Creates and migrates a database; sets e2e_db (conninfo).
e2e_create_db() {
    e2e_dbname="fa_e2e_$$_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
    e2e_psql "$FA_TEST_PG" -c "CREATE DATABASE $e2e_dbname" ||
        e2e_fail "cannot create a database in $FA_TEST_PG"
    e2e_db="$FA_TEST_PG dbname=$e2e_dbname"
    timeout 60 "$FEDAGG_BIN" migrate --database-url "$e2e_db" >"$e2e_work/migrate.log" 2>&1 ||
        { cat "$e2e_work/migrate.log" >&2; e2e_fail "fedagg migrate failed"; }
}

# e2e_issuer: a test identity provider (fedagg auth keygen) in the work
# directory; sets e2e_auth_env, the server settings of auth = jwt for it.
e2e_issuer() {
    timeout 60 "$FEDAGG_BIN" auth keygen --out "$e2e_work/issuer" >/dev/null ||
        e2e_fail "fedagg auth keygen failed"
    e2e_auth_env=(FEDAGG_AUTH=jwt FEDAGG_AUTH_ISSUER=https://id.e2e.test
        FEDAGG_AUTH_AUDIENCE=fedagg FEDAGG_AUTH_JWKS_FILE="$e2e_work/issuer/jwks.json")
}

# e2e_tls: a test CA and a certificate for 127.0.0.1 signed by it (openssl)
# in the work directory; sets e2e_tls_env, the server settings for HTTPS,
# and e2e_ca, the CA file clients verify the server with.
e2e_tls() {
    local d="$e2e_work/tls"
    mkdir -p "$d"
    (cd "$d" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -subj /CN=fedagg-e2e-ca -days 2 -out ca.crt &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
            -subj /CN=127.0.0.1 -out server.csr &&
        printf 'subjectAltName=IP:127.0.0.1\n' >server.ext &&
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.crt) >"$d/openssl.log" 2>&1 ||
        { cat "$d/openssl.log" >&2; e2e_fail "openssl could not make the test certificates"; }
    e2e_ca="$d/ca.crt"
    e2e_tls_env=(FEDAGG_TLS_CERT_FILE="$d/server.crt" FEDAGG_TLS_KEY_FILE="$d/server.key")
}

# e2e_tokens FILE PREFIX N: N device tokens, subjects PREFIX-0 .. PREFIX-(N-1), one per line.
e2e_tokens() {
    local i
    : >"$1"
    for i in $(seq 0 $(($3 - 1))); do
        "$FEDAGG_BIN" auth token --key "$e2e_work/issuer/issuer.sk" --issuer https://id.e2e.test \
            --subject "$2-$i" >>"$1" || e2e_fail "fedagg auth token failed"
    done
}

# e2e_start_server [FEDAGG_KEY=VALUE ...]: fresh keys, port 0; sets e2e_url
# from the "listening on" line (60 s at most).
e2e_start_server() {
    timeout 60 "$FEDAGG_BIN" keygen --out "$e2e_work/keys" >/dev/null || e2e_fail "fedagg keygen failed"
    e2e_restart_server "$@"
}

# e2e_restart_server [FEDAGG_KEY=VALUE ...]: as e2e_start_server with the
# keys already made (the previous server must have exited); a new port.
e2e_restart_server() {
    # Created here: the background job opens it only after it is scheduled.
    : >"$e2e_work/server.out"
    env DATABASE_URL="$e2e_db" FEDAGG_KEY_DIR="$e2e_work/keys" FEDAGG_PORT=0 FEDAGG_MODEL=ncf \
        FEDAGG_LOG_LEVEL=warn "$@" "$FEDAGG_BIN" serve >"$e2e_work/server.out" 2>"$e2e_work/server.log" &
    e2e_server_pid=$!
    local i
    e2e_url=
    for i in $(seq 1 600); do
        e2e_url=$(sed -n 's/.*listening on \(https\{0,1\}:[^ ]*\).*/\1/p' "$e2e_work/server.out" | head -n 1)
        [ -n "$e2e_url" ] && break
        kill -0 "$e2e_server_pid" 2>/dev/null || e2e_fail "fedagg serve exited at start"
        sleep 0.1
    done
    [ -n "$e2e_url" ] || e2e_fail "fedagg serve did not listen within 60 s"
}
