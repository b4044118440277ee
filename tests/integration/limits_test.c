/*
 * What one client may cost the server: rate limits on check-ins and
 * updates (429 with Retry-After, and recovery), per-deviceId check-in
 * limits, slow clients (a trickled body is cut off after request_max_s,
 * trickled headers get 408, and neither keeps the server from answering
 * others), oversized headers (431) and the per-address connection cap.
 * Real fedagg serve, real PostgreSQL, raw sockets over loopback.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "pgtest.h"
#include "privacy/crypto.h"
#include "serve.h"

static fa_test_server g_srv;

static const char *const ENV[] = {
    "FEDAGG_NUM_ITEMS=20",           "FEDAGG_MIN_COHORT=3",
    "FEDAGG_EPSILON_MAX=1000",       "FEDAGG_ROUND_DEADLINE_S=600",
    "FEDAGG_LOG_LEVEL=error",        "FEDAGG_RATE_LIMIT_PER_S=2",
    "FEDAGG_RATE_LIMIT_BURST=4",     "FEDAGG_DEVICE_RATE_PER_S=0.5",
    "FEDAGG_DEVICE_RATE_BURST=2",    "FEDAGG_REQUEST_MAX_S=2",
    "FEDAGG_REQUEST_TIMEOUT_S=30",   "FEDAGG_MAX_CONNECTIONS_PER_IP=40",
    "FEDAGG_MAX_HEADER_BYTES=16384", NULL};

static void setup(void)
{
    char db[1024], keys[256];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, ENV);
}

static void teardown(void)
{
    fa_test_server_stop(&g_srv, SIGTERM);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 120);

static double now_s(void)
{
    return (double)fa_now_ns() * 1e-9;
}

static int dial(void)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_srv.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return; /* the server closed it: the caller reads what came back */
        p += k;
        n -= (size_t)k;
    }
}

/* Reads until the peer closes or timeout_s passes; returns bytes read (response in out). */
static size_t read_reply(int fd, char *out, size_t cap, double timeout_s)
{
    size_t n = 0;
    double end = now_s() + timeout_s;

    out[0] = '\0';
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        int left_ms = (int)((end - now_s()) * 1000);
        if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0)
            break;
        ssize_t k = recv(fd, out + n, cap - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
        out[n] = '\0';
        if (strstr(out, "\r\n\r\n") != NULL && strstr(out, "Content-Length: 0") == NULL &&
            strchr(strstr(out, "\r\n\r\n") + 4, '}') != NULL)
            break; /* a whole JSON answer */
    }
    return n;
}

/* One request on a fresh connection; the status line's code. */
static int request(const char *raw, char *reply, size_t cap)
{
    int fd = dial();
    int status = 0;

    send_all(fd, raw, strlen(raw));
    (void)read_reply(fd, reply, cap, 10.0);
    close(fd);
    (void)sscanf(reply, "HTTP/1.%*d %d", &status);
    return status;
}

static int checkin(const char *device, char *reply, size_t cap)
{
    char raw[512], body[128];

    (void)snprintf(body, sizeof(body), device != NULL ? "{\"deviceId\":\"%s\"}" : "{}", device);
    (void)snprintf(raw, sizeof(raw),
                   "POST /api/federated/checkin HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   strlen(body), body);
    return request(raw, reply, cap);
}

static int healthz_ms(void)
{
    char reply[2048];
    double t0 = now_s();
    int st = request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", reply,
                     sizeof(reply));
    cr_assert_eq(st, 200, "%s", reply);
    return (int)((now_s() - t0) * 1000);
}

Test(limits, checkins_over_the_address_rate_get_429_with_retry_after_and_recover)
{
    char reply[4096];
    int st = 0, ok = 0;

    /* A burst of 4, then 2 per second: the 5th at once is refused. */
    for (int i = 0; i < 5; i++) {
        st = checkin(NULL, reply, sizeof(reply));
        ok += st == 200;
    }
    cr_assert_eq(ok, 4, "the burst is 4 (last answer %d: %s)", st, reply);
    cr_assert_eq(st, 429, "%s", reply);
    cr_assert_not_null(strstr(reply, "\"rate_limited\""), "%s", reply);
    cr_assert_not_null(strstr(reply, "Retry-After: 1\r\n"), "%s", reply);
    /* Reads are not limited. */
    (void)healthz_ms();
    /* After the wait it asked for, the address may check in again. */
    usleep(1100 * 1000);
    cr_assert_eq(checkin(NULL, reply, sizeof(reply)), 200, "%s", reply);
}

Test(limits, checkins_of_one_device_id_are_limited_whatever_the_answer)
{
    char reply[4096];

    /* Burst 2 per deviceId: the first is selected, the second is told it
     * already checked in, the third is refused before it is looked at. */
    cr_assert_eq(checkin("tv-1", reply, sizeof(reply)), 200, "%s", reply);
    cr_assert_eq(checkin("tv-1", reply, sizeof(reply)), 409, "%s", reply);
    cr_assert_eq(checkin("tv-1", reply, sizeof(reply)), 429, "%s", reply);
    cr_assert_not_null(strstr(reply, "Retry-After: 2\r\n"), "%s", reply);
    cr_assert_eq(checkin("tv-2", reply, sizeof(reply)), 200, "another device: %s", reply);
}

Test(limits, a_trickled_body_is_cut_off_and_the_server_keeps_answering_others)
{
    enum { SLOW = 20 };
    int fds[SLOW], closed = 0, worst_ms = 0;
    char reply[4096];
    const char *head = "POST /api/federated/update HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n"
                       "Fedagg-Model-Version: 0\r\nFedagg-Round-Token: t\r\n"
                       "Fedagg-Key-Id: k\r\nFedagg-Num-Samples: 1\r\n\r\n";
    double t0 = now_s();

    for (int i = 0; i < SLOW; i++) {
        fds[i] = dial();
        send_all(fds[i], head, strlen(head));
    }
    /* One byte each every 200 ms: never idle, never done. */
    while (now_s() - t0 < 3.5) {
        for (int i = 0; i < SLOW; i++)
            send_all(fds[i], "x", 1);
        int ms = healthz_ms();
        worst_ms = ms > worst_ms ? ms : worst_ms;
        usleep(200 * 1000);
    }
    cr_assert_lt(worst_ms, 1000, "others waited %d ms while %d clients trickled", worst_ms, SLOW);
    /* request_max_s is 2: every slow upload has been dropped by now (those
     * over the address's rate were answered 429 first, then dropped while
     * their body was still trickling in). */
    for (int i = 0; i < SLOW; i++) {
        send_all(fds[i], "x", 1);
        for (;;) {
            struct pollfd p = {fds[i], POLLIN, 0};
            if (poll(&p, 1, 2000) != 1)
                break;
            if (recv(fds[i], reply, sizeof(reply), 0) <= 0) {
                closed++;
                break;
            }
        }
        close(fds[i]);
    }
    cr_assert_eq(closed, SLOW, "%d of %d slow uploads were cut off", closed, SLOW);
}

Test(limits, trickled_headers_get_408)
{
    char reply[4096];
    int fd = dial(), status = 0;
    double t0 = now_s();

    send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32);
    while (now_s() - t0 < 2.6) {
        send_all(fd, "X-Slow: y\r\n", 11);
        usleep(300 * 1000);
    }
    send_all(fd, "\r\n", 2);
    (void)read_reply(fd, reply, sizeof(reply), 10.0);
    close(fd);
    (void)sscanf(reply, "HTTP/1.%*d %d", &status);
    cr_assert_eq(status, 408, "%s", reply);
    cr_assert_not_null(strstr(reply, "\"request_timeout\""), "%s", reply);
}

Test(limits, oversized_headers_get_431_and_change_nothing)
{
    size_t n = 40000;
    char *raw = malloc(n + 200), reply[4096];

    cr_assert_not_null(raw);
    int k = snprintf(raw, 200, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(raw + k, 'a', n);
    memcpy(raw + (size_t)k + n, "\r\n\r\n", 5);
    int st = request(raw, reply, sizeof(reply));
    free(raw);
    cr_assert(st == 431 || st == 413, "status %d: %.200s", st, reply);
    (void)healthz_ms();
}

Test(limits, connections_over_the_per_address_cap_are_refused_then_allowed_again)
{
    enum { CAP = 40 };
    int fds[CAP], extra, got;
    char buf[64];

    for (int i = 0; i < CAP; i++)
        fds[i] = dial();
    usleep(200 * 1000); /* the server has accepted them */
    extra = dial();
    struct pollfd p = {extra, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 3000), 1,
                 "the connection over the cap was neither closed nor answered");
    got = (int)recv(extra, buf, sizeof(buf), 0);
    cr_assert_leq(got, 0, "the connection over the cap was served");
    close(extra);
    for (int i = 0; i < CAP; i++)
        close(fds[i]);
    usleep(300 * 1000);
    (void)healthz_ms();
}

/* ------------------------------------------------------- operator surface */

static int g_op_port;
static char g_op_env_port[64];
static const char *g_op_env[] = {"FEDAGG_NUM_ITEMS=20",
                                 "FEDAGG_MIN_COHORT=3",
                                 "FEDAGG_EPSILON_MAX=1000",
                                 "FEDAGG_ROUND_DEADLINE_S=600",
                                 "FEDAGG_LOG_LEVEL=error",
                                 "FEDAGG_METRICS_LISTEN_ADDRESS=127.0.0.1",
                                 "FEDAGG_METRICS_TOKEN=s3cret-scraper",
                                 g_op_env_port,
                                 NULL};

/* A port that was free a moment ago. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void op_setup(void)
{
    char db[1024], keys[256];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    g_op_port = free_port();
    (void)snprintf(g_op_env_port, sizeof(g_op_env_port), "FEDAGG_METRICS_PORT=%d", g_op_port);
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, g_op_env);
}

TestSuite(operator, .init = op_setup, .fini = teardown, .timeout = 120);

/* One GET on port (0: the device port) with an optional extra header line. */
static int get_on(int port, const char *path, const char *extra, char *reply, size_t cap)
{
    char raw[512];
    int saved = g_srv.port, st;

    (void)snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
                   path, extra != NULL ? extra : "");
    if (port != 0)
        g_srv.port = port;
    st = request(raw, reply, cap);
    g_srv.port = saved;
    return st;
}

Test(operator, metrics_live_on_the_operator_port_behind_the_token)
{
    char reply[65536];

    /* The device port answers the device API and nothing of the operator's. */
    cr_assert_eq(
        get_on(0, "/metrics", "Authorization: Bearer s3cret-scraper\r\n", reply, sizeof(reply)),
        404, "%.300s", reply);
    cr_assert_eq(get_on(0, "/api/federated/key", NULL, reply, sizeof(reply)), 200);
    /* The operator port: /metrics needs the token, health checks do not. */
    cr_assert_eq(get_on(g_op_port, "/metrics", NULL, reply, sizeof(reply)), 401, "%.300s", reply);
    cr_assert_not_null(strstr(reply, "WWW-Authenticate: Bearer"), "%.300s", reply);
    cr_assert_not_null(strstr(reply, "\"unauthorized\""), "%.300s", reply);
    cr_assert_eq(get_on(g_op_port, "/metrics", "Authorization: Bearer s3cret-scrapeR\r\n", reply,
                        sizeof(reply)),
                 401);
    cr_assert_eq(get_on(g_op_port, "/metrics", "Authorization: Bearer s3cret-scraper\r\n", reply,
                        sizeof(reply)),
                 200, "%.300s", reply);
    cr_assert_not_null(strstr(reply, "fedagg_http_connections_open"), "%.300s", reply);
    cr_assert_not_null(strstr(reply, "fedagg_rate_limited_total"));
    cr_assert_eq(get_on(g_op_port, "/healthz", NULL, reply, sizeof(reply)), 200);
    cr_assert_eq(get_on(g_op_port, "/readyz", NULL, reply, sizeof(reply)), 200);
    /* ... and nothing of the device API. */
    cr_assert_eq(get_on(g_op_port, "/api/federated/key", NULL, reply, sizeof(reply)), 404);
    cr_assert_eq(get_on(g_op_port, "/api/privacy/ledger", NULL, reply, sizeof(reply)), 404);
}

static const char *const EXPOSED_ENV[] = {"FEDAGG_NUM_ITEMS=20", "FEDAGG_LISTEN_ADDRESS=0.0.0.0",
                                          "FEDAGG_ALLOW_PLAIN_HTTP=true", "FEDAGG_LOG_LEVEL=error",
                                          NULL};

static void exposed_setup(void)
{
    char db[1024], keys[256];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, EXPOSED_ENV);
}

TestSuite(exposed, .init = exposed_setup, .fini = teardown, .timeout = 120);

/* A device port reachable from other hosts, with no operator port and no token. */
Test(exposed, metrics_stay_off_a_device_port_open_to_the_network)
{
    char reply[65536];

    cr_assert_eq(get_on(0, "/metrics", NULL, reply, sizeof(reply)), 404, "%.300s", reply);
    cr_assert_eq(get_on(0, "/healthz", NULL, reply, sizeof(reply)), 200);
    cr_assert_eq(get_on(0, "/api/privacy/budget", NULL, reply, sizeof(reply)), 200);
}
