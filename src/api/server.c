/*
 * The libmicrohttpd glue: the daemons of the device and operator ports, the
 * request callbacks that check a request's route, method, limits and body
 * before its handler runs (handlers.c), and sending the reply.
 */
#include "api/server.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "api/internal.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/request.h"
#include "core/log.h"
#include "core/util.h"
#include "privacy/crypto.h"

/* ======================================================= libmicrohttpd glue */

/* Whether the Content-Type ct is the media type `type` (parameters allowed). */
static int has_type(const char *ct, const char *type)
{
    size_t n = strlen(type);
    return ct != NULL && strncasecmp(ct, type, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, fa_api_req *q, fa_api_reply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char num[16];

    if (r->blob != NULL) {
        resp = MHD_create_response_from_buffer_with_free_callback_cls(r->blob->len, r->blob->data,
                                                                      fa_api__blob_unref, r->blob);
        if (resp == NULL)
            fa_api__blob_unref(r->blob);
    } else if (r->page != NULL) {
        /* PERSISTENT: libmicrohttpd only reads it (the API takes void *). */
        resp = MHD_create_response_from_buffer(r->len, (void *)(uintptr_t)r->page,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(r->len, r->body != NULL ? r->body : "",
                                               r->body != NULL ? MHD_RESPMEM_MUST_FREE
                                                               : MHD_RESPMEM_PERSISTENT);
        if (resp == NULL)
            free(r->body);
    }
    r->blob = NULL;
    r->body = NULL;
    if (resp == NULL)
        return MHD_NO;
    if (r->content_type != NULL && r->status != 304)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->etag[0] != '\0')
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->cache_control != NULL)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache_control);
    else
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->vary_accept)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept");
    if (r->allow != NULL)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->location != NULL)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->www_authenticate != NULL)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    if (r->page_headers) {
        /* The page runs its own scripts only, talks only to this server. */
        (void)MHD_add_response_header(
            resp, "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        (void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (r->retry_after > 0) {
        (void)snprintf(num, sizeof(num), "%d", r->retry_after);
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    q->responded = 1;
    q->status = r->status;
    return ret;
}

/* Whether listener l answers route (others are 404 there). */
static int serves(const fa_api_listener *l, fa_api_route route)
{
    if (l->ops)
        return route == FA_ROUTE_METRICS || route == FA_ROUTE_HEALTHZ || route == FA_ROUTE_READYZ;
    return route != FA_ROUTE_METRICS || l->s->metrics_on_device_port;
}

/* With metrics_token set, the request must carry Authorization: Bearer <it>. */
static int metrics_token_ok(const fa_server *s, struct MHD_Connection *conn)
{
    const char *want = s->cfg->metrics_token, *got;
    size_t n = strlen(want);

    if (n == 0)
        return 1;
    got = fa_api__header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    if (got == NULL || strncasecmp(got, "Bearer ", 7) != 0)
        return 0;
    got += 7;
    return strlen(got) == n && fa_crypto_equal(got, want, n);
}

/* Whether the request has taken longer than request_max_s since its request line. */
static int too_slow(const fa_server *s, const fa_api_req *q)
{
    return (double)(fa_now_ns() - q->start_ns) * 1e-9 > (double)s->cfg->request_max_s;
}

/* Spends one request of the client's address from its bucket; 0 when empty. */
static int address_allowed(fa_server *s, struct MHD_Connection *conn, int *retry_after)
{
    const union MHD_ConnectionInfo *ci;
    const struct sockaddr *sa;

    if (s->by_address == NULL)
        return 1;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || (sa = ci->client_addr) == NULL)
        return 1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return fa_ratelimit_take(s->by_address, &in->sin_addr, sizeof(in->sin_addr),
                                 (double)fa_now_ns() * 1e-9, retry_after);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        /* A /64 is one subscriber's network: limit it as one address. */
        return fa_ratelimit_take(s->by_address, &in6->sin6_addr, 8, (double)fa_now_ns() * 1e-9,
                                 retry_after);
    }
    return 1;
}

/* The request line has arrived: the request's clock starts (request_max_s). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    fa_api_req *q = calloc(1, sizeof(*q));

    (void)cls;
    (void)uri;
    (void)conn;
    if (q != NULL) {
        q->start_ns = fa_now_ns();
        q->route = FA_ROUTE_OTHER;
    }
    return q;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    fa_metrics_connection(code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    const fa_api_listener *l = cls;
    fa_server *s = l->s;
    fa_api_req *q = *req_cls;
    fa_api_reply r;
    const char *allowed = NULL;

    (void)version;
    memset(&r, 0, sizeof(r));
    if (q == NULL || !q->headers_seen) {
        /* First call: headers only. Decide everything that does not need
         * the body now, so a bad request is answered before it is read. */
        if (q == NULL && (q = calloc(1, sizeof(*q))) != NULL)
            q->start_ns = fa_now_ns();
        if (q == NULL)
            return MHD_NO;
        *req_cls = q;
        q->headers_seen = 1;
        q->id = atomic_fetch_add(&s->next_req, 1) + 1;
        q->route = fa_api_route_find(url, &allowed);
        if (!serves(l, q->route))
            q->route = FA_ROUTE_OTHER;
        if (too_slow(s, q)) {
            fa_metrics_timed_out();
            fa_api__reply_fail(&r, FA_EINVAL, "request_timeout",
                               "the request took longer than request_max_s to arrive");
            return send_reply(conn, q, &r);
        }
        if (q->route == FA_ROUTE_OTHER) {
            fa_api__reply_fail(&r, FA_ENOTFOUND, "not_found", "no such endpoint");
            return send_reply(conn, q, &r);
        }
        if (strcmp(method, allowed) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(allowed, "GET") == 0)) {
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "%s is not allowed here (use %s)", method, allowed);
            fa_api__reply_fail(&r, FA_EINVAL, "method_not_allowed", msg);
            r.allow = allowed;
            return send_reply(conn, q, &r);
        }
        if (q->route == FA_ROUTE_METRICS && !metrics_token_ok(s, conn)) {
            fa_api__reply_fail(&r, FA_EINVAL, "unauthorized",
                               "GET /metrics needs Authorization: Bearer <metrics_token>");
            r.www_authenticate = "Bearer realm=\"fedagg metrics\"";
            return send_reply(conn, q, &r);
        }
        if ((q->route == FA_ROUTE_CHECKIN || q->route == FA_ROUTE_UPDATE) &&
            !address_allowed(s, conn, &r.retry_after)) {
            fa_metrics_rate_limited();
            fa_api__reply_fail(
                &r, FA_EINVAL, "rate_limited",
                "too many requests from this address: retry after Retry-After seconds");
            return send_reply(conn, q, &r);
        }
        if (strcmp(allowed, "POST") == 0) {
            const char *ct = fa_api__header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
            const char *cl = fa_api__header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
            int64_t len = 0;
            q->binary = q->route == FA_ROUTE_UPDATE && has_type(ct, "application/octet-stream");
            if (!q->binary && !has_type(ct, "application/json")) {
                fa_api__reply_fail(&r, FA_EINVAL, "unsupported_media_type",
                                   q->route == FA_ROUTE_UPDATE
                                       ? "content type must be application/json or "
                                         "application/octet-stream"
                                       : "content type must be application/json");
                return send_reply(conn, q, &r);
            }
            if (cl != NULL && (fa_parse_i64(&len, cl) < 0 || len > s->cfg->max_body_bytes)) {
                char msg[96];
                (void)snprintf(msg, sizeof(msg), "request body is over the limit of %lld bytes",
                               (long long)s->cfg->max_body_bytes);
                fa_api__reply_fail(&r, FA_ETOOBIG, "body_too_large", msg);
                return send_reply(conn, q, &r);
            }
            /* The announced length (bounded above): one allocation, no regrowth. */
            if (cl != NULL && len > 0) {
                q->body = malloc((size_t)len + 1);
                if (q->body == NULL) {
                    fa_api__reply_fail(&r, FA_ENOMEM, "out_of_memory", "out of memory");
                    return send_reply(conn, q, &r);
                }
                q->body_cap = (size_t)len + 1;
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->responded && !too_slow(s, q))
            return MHD_YES; /* a response is queued: drain and discard */
        if (too_slow(s, q)) {
            /* A body trickled in too slowly: drop the connection (an answer
             * would wait for the rest of the body). */
            fa_metrics_timed_out();
            FA_LOG(FA_WARN, "http.too_slow", "req=%" PRIu64 " route=%s received=%zu", q->id,
                   fa_api_route_name(q->route), q->body_len);
            return MHD_NO;
        }
        if (q->body_len + n > (size_t)s->cfg->max_body_bytes) {
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "request body is over the limit of %lld bytes",
                           (long long)s->cfg->max_body_bytes);
            free(q->body);
            q->body = NULL;
            fa_api__reply_fail(&r, FA_ETOOBIG, "body_too_large", msg);
            return send_reply(conn, q, &r);
        }
        if (q->body_len + n + 1 > q->body_cap) {
            size_t cap = q->body_cap == 0 ? 64 * 1024 : q->body_cap;
            while (cap < q->body_len + n + 1)
                cap *= 2;
            if (cap > (size_t)s->cfg->max_body_bytes + 1)
                cap = (size_t)s->cfg->max_body_bytes + 1;
            char *p = realloc(q->body, cap);
            if (p == NULL) {
                fa_api__reply_fail(&r, FA_ENOMEM, "out_of_memory", "out of memory");
                return send_reply(conn, q, &r);
            }
            q->body = p;
            q->body_cap = cap;
        }
        memcpy(q->body + q->body_len, upload_data, n);
        q->body_len += n;
        return MHD_YES;
    }
    if (q->responded)
        return MHD_YES;
    fa_log_set_request(q->id);
    if (q->ticket != NULL) {
        /* Resumed: the parked update's commit is settled. */
        fa_api__update_answer(q, &r);
    } else {
        fa_api__dispatch(s, conn, q, url, &r);
    }
    fa_log_set_request(0);
    if (r.parked)
        return MHD_YES; /* suspended until its commit */
    return send_reply(conn, q, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    fa_api_req *q = *req_cls;

    (void)cls;
    (void)conn;
    if (q == NULL)
        return;
    fa_metrics_request((int)q->route, q->responded ? q->status : 499, fa_now_ns() - q->start_ns);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        FA_LOG(FA_DEBUG, "http.aborted", "req=%" PRIu64 " route=%s code=%d", q->id,
               fa_api_route_name(q->route), (int)toe);
    fa_aggregator_ticket_free(q->ticket); /* settled, unanswered: the device hung up */
    if (q->parked) {
        fa_server *s = ((const fa_api_listener *)cls)->s;
        (void)pthread_mutex_lock(&s->park_mu);
        s->parked--;
        (void)pthread_cond_broadcast(&s->park_cv);
        (void)pthread_mutex_unlock(&s->park_mu);
    }
    free(q->body);
    free(q);
    *req_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) FA_PRINTF(2, 0);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];

    (void)cls;
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    FA_LOG(FA_WARN, "http.internal", "msg=\"%s\"", msg);
}

/* Whether the literal IP address a is a loopback address. */
static int is_loopback(const char *a)
{
    struct in_addr v4;
    struct in6_addr v6;

    if (inet_pton(AF_INET, a, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, a, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/*
 * Starts one libmicrohttpd daemon for listener l on address:port (port 0:
 * any free port, *port_out the one bound). The limits of the device port
 * apply to both.
 */
static int start_daemon(struct MHD_Daemon **out, uint16_t *port_out, fa_api_listener *l,
                        const char *key, const char *address, int64_t port, unsigned threads,
                        fa_error *err)
{
    const fa_config *cfg = l->s->cfg;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    const int tls = cfg->tls_cert_file[0] != '\0';

    if (!tls && !cfg->allow_plain_http && !is_loopback(address))
        return fa_fail(err, FA_EINVAL,
                       "config key %s is %s, not a loopback address: serve HTTPS (tls_cert_file, "
                       "tls_key_file), or set allow_plain_http = true behind a proxy that "
                       "terminates TLS",
                       key, address);
    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, address, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, address, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return fa_fail(err, FA_EINVAL, "config key %s must be an IP address, got '%s'", key,
                       address);
    }
    /* The logger goes first so libmicrohttpd never prints on its own. */
#define DAEMON_OPTIONS                                                                             \
    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addr,                      \
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,                       \
        (unsigned)cfg->request_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,            \
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, l, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,    \
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,                               \
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,                 \
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_header_bytes
    if (tls)
        *out = MHD_start_daemon(flags | MHD_USE_TLS, (uint16_t)port, NULL, NULL, on_request, l,
                                DAEMON_OPTIONS, MHD_OPTION_HTTPS_CERT_CALLBACK, fa_api__tls_cert_cb,
                                MHD_OPTION_HTTPS_PRIORITIES, FA_API_TLS_PRIORITIES, MHD_OPTION_END);
    else
        *out = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, l, DAEMON_OPTIONS,
                                MHD_OPTION_END);
#undef DAEMON_OPTIONS
    if (*out == NULL)
        return fa_fail(err, FA_EUNAVAIL, "cannot listen on %s:%lld", address, (long long)port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(*out, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info != NULL ? info->port : (uint16_t)port;
    return FA_OK;
}

int fa_server_start(fa_server **out, const fa_server_opts *opts, fa_error *err)
{
    fa_server *s = calloc(1, sizeof(*s));
    const fa_config *cfg = opts->cfg;
    int rc = FA_OK;

    *out = NULL;
    if (s == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory starting the server");
    s->cfg = cfg;
    s->store = opts->store;
    s->agg = opts->agg;
    s->keys = opts->keys;
    s->device_side.s = s;
    s->operator_side.s = s;
    s->operator_side.ops = 1;
    /* /metrics stays off the device port unless that port is only reachable
     * from this host, or scrapers must show metrics_token (docs/api.md). */
    s->metrics_on_device_port = cfg->metrics_listen_address[0] == '\0' &&
                                (is_loopback(cfg->listen_address) || cfg->metrics_token[0] != '\0');
    (void)pthread_mutex_init(&s->cache_mu, NULL);
    (void)pthread_mutex_init(&s->audit_mu, NULL);
    (void)pthread_mutex_init(&s->park_mu, NULL);
    (void)pthread_cond_init(&s->park_cv, NULL);
    if ((cfg->rate_limit_per_s > 0 &&
         (rc = fa_ratelimit_new(&s->by_address, 65536, cfg->rate_limit_per_s, cfg->rate_limit_burst,
                                err)) < 0) ||
        (cfg->device_rate_per_s > 0 &&
         (rc = fa_ratelimit_new(&s->by_device, 65536, cfg->device_rate_per_s,
                                cfg->device_rate_burst, err)) < 0))
        goto cleanup;
    if (strcmp(cfg->auth, "jwt") == 0) {
        if (cfg->auth_jwks_file[0] == '\0' || cfg->auth_issuer[0] == '\0') {
            rc = fa_fail(err, FA_EINVAL,
                         "auth = jwt needs auth_issuer and auth_jwks_file (config keys)");
            goto cleanup;
        }
        if ((rc = fa_auth_new(&s->auth, cfg->auth_issuer, cfg->auth_audience, cfg->auth_jwks_file,
                              cfg->auth_leeway_s, err)) < 0)
            goto cleanup;
        FA_LOG(FA_INFO, "auth.jwt", "issuer=\"%s\" audience=\"%s\" keys=%zu", cfg->auth_issuer,
               cfg->auth_audience, fa_auth_key_count(s->auth));
    } else {
        FA_LOG(FA_WARN, "auth.none",
               "msg=\"auth = none: any client can check in as any device; use auth = jwt in "
               "production\"");
    }
    const char *names[FA_ROUTE_COUNT];
    for (int i = 0; i < FA_ROUTE_COUNT; i++)
        names[i] = fa_api_route_name((fa_api_route)i);
    fa_metrics_set_route_names(names, FA_ROUTE_COUNT);
    if (cfg->tls_cert_file[0] != '\0' || cfg->tls_key_file[0] != '\0') {
        if (cfg->tls_cert_file[0] == '\0' || cfg->tls_key_file[0] == '\0') {
            rc = fa_fail(err, FA_EINVAL, "HTTPS needs both tls_cert_file and tls_key_file");
            goto cleanup;
        }
        if (!MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK)) {
            rc = fa_fail(err, FA_EINVAL, "this libmicrohttpd has no TLS certificate callback");
            goto cleanup;
        }
        if ((rc = fa_api__tls_reload(cfg, err)) < 0)
            goto cleanup;
    }
    if ((rc = start_daemon(&s->daemon, &s->port, &s->device_side, "listen_address",
                           cfg->listen_address, cfg->port, (unsigned)cfg->http_threads, err)) < 0)
        goto cleanup;
    if (cfg->metrics_listen_address[0] != '\0' &&
        (rc = start_daemon(&s->op_daemon, &s->op_port, &s->operator_side, "metrics_listen_address",
                           cfg->metrics_listen_address, cfg->metrics_port, 1, err)) < 0)
        goto cleanup;
    if (s->op_daemon == NULL && !s->metrics_on_device_port)
        FA_LOG(FA_WARN, "metrics.off",
               "msg=\"GET /metrics is not served: the device port is not loopback; set "
               "metrics_listen_address or metrics_token\"");
    *out = s;
    s = NULL;
cleanup:
    fa_server_stop(s);
    return rc;
}

uint16_t fa_server_port(const fa_server *srv)
{
    return srv->port;
}

int fa_server_reload(fa_server *srv, fa_error *err)
{
    int rc = FA_OK;

    if (srv->cfg->tls_cert_file[0] != '\0' && (rc = fa_api__tls_reload(srv->cfg, err)) < 0)
        return rc;
    if (srv->auth != NULL)
        rc = fa_auth_reload(srv->auth, err);
    return rc;
}

uint16_t fa_server_metrics_port(const fa_server *srv)
{
    return srv->op_daemon != NULL ? srv->op_port : 0;
}

void fa_server_stop(fa_server *srv)
{
    if (srv == NULL)
        return;
    /* Every parked update is answered first: its commit is at most a
     * batch away, and a daemon must not stop with a connection suspended. */
    (void)pthread_mutex_lock(&srv->park_mu);
    srv->stopping = 1;
    while (srv->parked > 0)
        (void)pthread_cond_wait(&srv->park_cv, &srv->park_mu);
    (void)pthread_mutex_unlock(&srv->park_mu);
    if (srv->op_daemon != NULL)
        MHD_stop_daemon(srv->op_daemon);
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    for (int i = 0; i < FA_API_CACHE_SLOTS; i++)
        fa_api__blob_unref(srv->cache[i].blob);
    (void)pthread_mutex_destroy(&srv->cache_mu);
    (void)pthread_mutex_destroy(&srv->audit_mu);
    (void)pthread_mutex_destroy(&srv->park_mu);
    (void)pthread_cond_destroy(&srv->park_cv);
    fa_ratelimit_free(srv->by_address);
    fa_ratelimit_free(srv->by_device);
    fa_auth_free(srv->auth);
    fa_api__tls_free();
    free(srv);
}
