/*
 * The least an ingest server can do, for bench/api/nodes.sh: an HTTP server
 * with the same libmicrohttpd set-up as `fedagg serve` (thread pool, epoll,
 * connection memory) that receives each POSTed body into one allocation of
 * its announced length and answers 202. On /open it also opens the body as
 * a sealed box with the server's key, into one reused buffer per thread;
 * on /recv it only receives. No database, no folding, no checks. Driven by
 * the same load generator as the nodes, its rate is the ceiling any server
 * reaches on this machine with the load generator beside it.
 *
 *   bench_sink --key-dir DIR [--threads T] [--memory BYTES]
 *       prints "listening on http://127.0.0.1:PORT", serves until SIGTERM
 */
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

#define BODY_MAX (64u << 20)

struct body {
    unsigned char *data;
    size_t len, cap;
};

static _Thread_local unsigned char *t_plain;
static _Thread_local size_t t_plain_cap;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO;
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Opens b as a sealed box into this thread's buffer: 0, or -1 when it does not open. */
static int open_box(const fa_keys *keys, const struct body *b)
{
    fa_error err = FA_ERROR_INIT;
    size_t len = 0;

    if (b->len < FA_CRYPTO_SEAL_OVERHEAD)
        return -1;
    if (t_plain_cap < b->len) {
        free(t_plain);
        t_plain_cap = 0;
        if ((t_plain = malloc(b->len)) == NULL)
            return -1;
        t_plain_cap = b->len;
    }
    return fa_crypto_box_open(t_plain, t_plain_cap, &len, fa_keys_box(keys), b->data, b->len,
                              &err) < 0
               ? -1
               : 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    const fa_keys *keys = cls;
    struct body *b = *req_cls;

    (void)version;
    if (strcmp(method, "POST") != 0)
        return reply(conn, 405, "{\"error\":\"POST only\"}\n");
    if (b == NULL) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t len = 0;
        if (cl == NULL || fa_parse_i64(&len, cl) < 0 || len < 1 || (uint64_t)len > BODY_MAX)
            return reply(conn, 400, "{\"error\":\"needs a Content-Length\"}\n");
        if ((b = calloc(1, sizeof(*b))) == NULL || (b->data = malloc((size_t)len)) == NULL) {
            free(b);
            return MHD_NO;
        }
        b->cap = (size_t)len;
        *req_cls = b;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (n > b->cap - b->len)
            return MHD_NO;
        memcpy(b->data + b->len, upload, n);
        b->len += n;
        return MHD_YES;
    }
    if (strcmp(url, "/open") == 0 && open_box(keys, b) < 0)
        return reply(conn, 400, "{\"error\":\"did not open\"}\n");
    return reply(conn, 202, "{\"status\":\"accepted\"}\n");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct body *b = *req_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (b == NULL)
        return;
    free(b->data);
    free(b);
    *req_cls = NULL;
}

int main(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"key-dir", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 't'},
        {"memory", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *key_dir = NULL;
    int64_t threads = 16, memory = 32768;
    struct sockaddr_in addr;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    fa_keys *keys = NULL;
    fa_error err = FA_ERROR_INIT;
    int opt;

    while ((opt = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        int64_t *target = opt == 't' ? &threads : opt == 'm' ? &memory : NULL;
        if (opt == 'k')
            key_dir = optarg;
        else if (target == NULL || fa_parse_i64(target, optarg) < 0 || *target < 1 ||
                 *target > 1 << 30) {
            key_dir = NULL;
            break;
        }
    }
    if (key_dir == NULL || threads > 256) {
        fprintf(stderr, "usage: bench_sink --key-dir DIR [--threads T] [--memory BYTES]\n");
        return 2;
    }
    if (fa_crypto_init(&err) < 0 || fa_keys_load(&keys, key_dir, &err) < 0) {
        fprintf(stderr, "bench_sink: %s\n", err.msg);
        return 1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* As `fedagg serve` starts its daemon (src/api/server.c). */
    d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, keys, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)memory, MHD_OPTION_END);
    if (d == NULL || (info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) == NULL) {
        fprintf(stderr, "bench_sink: the HTTP daemon did not start\n");
        fa_keys_free(keys);
        return 1;
    }
    (void)signal(SIGTERM, on_signal);
    (void)signal(SIGINT, on_signal);
    printf("listening on http://127.0.0.1:%u\n", (unsigned)info->port);
    (void)fflush(stdout);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    fa_keys_free(keys);
    return 0;
}
