/*
 * HTTPS: fedagg serve with a certificate from a test CA (made here with the
 * openssl command). Devices that verify it with the CA talk to the server,
 * simulated devices included; a client without the CA, plain HTTP, TLS
 * below 1.2 and non-AEAD ciphers are refused; a new certificate is served
 * after SIGHUP without a restart; and a server that would speak plain HTTP
 * on a non-loopback address refuses to start.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/compiler.h"
#include "device/client.h"
#include "pgtest.h"
#include "privacy/crypto.h"
#include "serve.h"

static fa_test_server g_srv;
static char g_dir[64] = "/tmp/fa-tls-XXXXXX";

/* Runs a shell command; its exit status. */
static int sh(const char *fmt, ...) FA_PRINTF(1, 2);

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A server certificate NAME.{key,crt} for 127.0.0.1 signed by the test CA. */
static void server_cert(const char *name)
{
    cr_assert_eq(sh("cd %s && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                    "-nodes -keyout %s.key -subj /CN=%s -out %s.csr 2>/dev/null && "
                    "printf 'subjectAltName=IP:127.0.0.1\\n' > %s.ext && "
                    "openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 2 -extfile %s.ext -out %s.crt 2>/dev/null",
                    g_dir, name, name, name, name, name, name, name),
                 0, "openssl could not make the %s certificate", name);
}

static void setup(void)
{
    char db[1024], keys[256], cert[128], key[128];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    cr_assert_not_null(mkdtemp(g_dir));
    cr_assert_eq(sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                    "-nodes -keyout ca.key -subj /CN=fedagg-test-ca -days 2 -out ca.crt "
                    "2>/dev/null",
                    g_dir),
                 0, "openssl could not make the test CA");
    server_cert("one");
    (void)snprintf(cert, sizeof(cert), "FEDAGG_TLS_CERT_FILE=%s/one.crt", g_dir);
    (void)snprintf(key, sizeof(key), "FEDAGG_TLS_KEY_FILE=%s/one.key", g_dir);
    const char *env[] = {"FEDAGG_NUM_ITEMS=200",
                         "FEDAGG_MIN_COHORT=2",
                         "FEDAGG_EPSILON_MAX=1000",
                         "FEDAGG_ROUND_DEADLINE_S=2",
                         "FEDAGG_LOG_LEVEL=warn",
                         cert,
                         key,
                         NULL};
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, env);
    cr_assert_eq(strncmp(g_srv.url, "https://", 8), 0, "%s", g_srv.url);
}

static void teardown(void)
{
    fa_test_server_stop(&g_srv, SIGTERM);
    if (getenv("FA_TLS_KEEP") == NULL)
        (void)sh("rm -rf %s", g_dir);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 180);

static fa_device_client *client(int with_ca)
{
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    char ca[128];

    (void)snprintf(ca, sizeof(ca), "%s/ca.crt", g_dir);
    cr_assert_eq(fa_device_client_new(&c, g_srv.url, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_client_set_ca(c, with_ca ? ca : NULL, &err), FA_OK);
    return c;
}

Test(tls, devices_that_verify_the_server_talk_and_others_cannot)
{
    fa_device_client *good = client(1), *bad = client(0);
    fa_device_key key;
    fa_error err = FA_ERROR_INIT;
    long st = 0;

    cr_assert_eq(fa_device_fetch_key(&key, good, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_fetch_key(&key, bad, &err), FA_EUNAVAIL,
                 "a certificate the client cannot verify was accepted");
    cr_assert(strstr(err.msg, "certificate") != NULL || strstr(err.msg, "SSL") != NULL, "%s",
              err.msg);
    /* Plain HTTP to the HTTPS port gets no HTTP answer. */
    char plain[sizeof(g_srv.url) + 8];
    fa_device_client *p = NULL;
    (void)snprintf(plain, sizeof(plain), "http://%.56s", g_srv.url + strlen("https://"));
    cr_assert_eq(fa_device_client_new(&p, plain, &err), FA_OK);
    if (fa_device_http(&st, NULL, NULL, p, "GET", "/healthz", NULL, NULL, 0, NULL, &err) == FA_OK)
        cr_assert_neq(st, 200, "plain HTTP was answered on the HTTPS port");
    fa_device_client_free(p);
    fa_device_client_free(good);
    fa_device_client_free(bad);
}

Test(tls, only_tls12_and_13_with_aead_ciphers)
{
    const char *port = strrchr(g_srv.url, ':') + 1;
    /* openssl s_client exits 0 when the handshake completes. */
    cr_assert_eq(sh("openssl s_client -connect 127.0.0.1:%s -tls1_3 -CAfile %s/ca.crt "
                    "-verify_return_error </dev/null >/dev/null 2>&1",
                    port, g_dir),
                 0, "TLS 1.3 was refused");
    cr_assert_eq(sh("openssl s_client -connect 127.0.0.1:%s -tls1_2 -cipher "
                    "ECDHE-ECDSA-AES128-GCM-SHA256 -CAfile %s/ca.crt </dev/null >/dev/null 2>&1",
                    port, g_dir),
                 0, "TLS 1.2 with AES-GCM was refused");
    cr_assert_neq(sh("openssl s_client -connect 127.0.0.1:%s -tls1_2 -cipher "
                     "ECDHE-ECDSA-AES128-SHA </dev/null >/dev/null 2>&1",
                     port),
                  0, "a CBC cipher was accepted");
    cr_assert_neq(sh("openssl s_client -connect 127.0.0.1:%s -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' "
                     "</dev/null >/dev/null 2>&1",
                     port),
                  0, "TLS 1.1 was accepted");
}

/* The serial number of the certificate the server presents now. */
static void served_serial(char *out, size_t cap)
{
    char cmd[512];
    (void)snprintf(cmd, sizeof(cmd),
                   "openssl s_client -connect 127.0.0.1:%s </dev/null 2>/dev/null | "
                   "openssl x509 -noout -serial",
                   strrchr(g_srv.url, ':') + 1);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    out[0] = '\0';
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    pclose(f);
}

Test(tls, a_new_certificate_is_served_after_sighup)
{
    char before[128], after[128];

    served_serial(before, sizeof(before));
    cr_assert_neq(before[0], '\0');
    server_cert("two");
    cr_assert_eq(sh("cd %s && cp two.crt one.crt && cp two.key one.key", g_dir), 0);
    cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
    for (int i = 0; i < 30; i++) {
        usleep(100 * 1000);
        served_serial(after, sizeof(after));
        if (strcmp(after, before) != 0)
            break;
    }
    cr_assert_str_neq(after, before, "the old certificate is still served");
    /* And devices still verify it. */
    fa_device_client *c = client(1);
    fa_device_key key;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_device_fetch_key(&key, c, &err), FA_OK, "%s", err.msg);
    fa_device_client_free(c);
}

Test(tls, simulated_devices_run_a_round_over_https)
{
    cr_assert_eq(sh("\"%s\" simulate --server %s --ca-file %s/ca.crt --synthetic --users 20 "
                    "--items 200 --positives 10 --rounds 1 --cohort 2 --parallel 2 "
                    ">%s/sim.out 2>%s/sim.err",
                    getenv("FEDAGG_BIN"), g_srv.url, g_dir, g_dir, g_dir),
                 0, "fedagg simulate over HTTPS failed (see %s/sim.err)", g_dir);
    cr_assert_eq(sh("grep -q '\"version\":1' %s/sim.out", g_dir), 0, "no version 1 published");
}

Test(tls, plain_http_on_a_network_address_needs_to_be_asked_for)
{
    char out[128];
    (void)snprintf(out, sizeof(out), "%s/refused.err", g_dir);
    cr_assert_neq(sh("env DATABASE_URL='%s' FEDAGG_KEY_DIR='%s' FEDAGG_MODEL=ncf "
                     "FEDAGG_LISTEN_ADDRESS=0.0.0.0 "
                     "FEDAGG_PORT=0 timeout 20 \"%s\" serve >/dev/null 2>%s",
                     g_srv.db, g_srv.keydir, getenv("FEDAGG_BIN"), out),
                  0, "fedagg serve started plain HTTP on 0.0.0.0");
    cr_assert_eq(sh("grep -q 'allow_plain_http' %s", out), 0, "the refusal does not say why");
}
