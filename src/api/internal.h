/*
 * Shared by the files of the api module only: the server's state, one
 * request and its reply under construction, the model cache (cache.c),
 * TLS (tls.c), and the reply helpers and the dispatch of the handlers
 * (handlers.c) that the libmicrohttpd glue (server.c) calls. No other
 * module includes this header.
 */
#ifndef FA_API_INTERNAL_H
#define FA_API_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregator/aggregator.h"
#include "api/request.h"
#include "api/server.h"
#include "core/config.h"
#include "core/error.h"
#include "privacy/ledger.h"

typedef struct fa_auth fa_auth;
typedef struct fa_ratelimit fa_ratelimit;

/* --------------------------------------------------------- snapshot cache */

/* Rendered model responses are immutable per (version, format): keep the
 * last few, reference-counted, so a burst of devices downloading version v
 * costs one render and no copies. */
#define FA_API_CACHE_SLOTS 8

/* A shared immutable response body. */
typedef struct fa_api_blob {
    atomic_int refs;
    char *data;
    size_t len; /* bytes */
} fa_api_blob;

typedef struct fa_api_cache_slot {
    int64_t version;
    int format; /* 0 tfjs json, 1 safetensors */
    fa_api_blob *blob;
    char etag[96];
    uint64_t used; /* cache_clock at the last use */
} fa_api_cache_slot;

/* ----------------------------------------------------------------- server */

/* One listening socket: the device port, or the operator port of /metrics. */
typedef struct fa_api_listener {
    fa_server *s;
    int ops; /* the operator port: serves /metrics, /healthz and /readyz only */
} fa_api_listener;

struct fa_server {
    const fa_config *cfg;
    fa_store *store;
    fa_aggregator *agg;
    const fa_keys *keys;
    struct MHD_Daemon *daemon;    /* the device port */
    struct MHD_Daemon *op_daemon; /* the operator port, or NULL */
    uint16_t port, op_port;
    fa_api_listener device_side, operator_side;
    int metrics_on_device_port; /* /metrics is answered on the device port */
    atomic_uint_fast64_t next_req;
    pthread_mutex_t cache_mu; /* guards cache; never held across I/O */
    fa_api_cache_slot cache[FA_API_CACHE_SLOTS];
    uint64_t cache_clock;
    /*
     * The last full ledger audit and what it covered. audit_mu serialises
     * audits and is held across the audit's reads: concurrent budget or
     * head requests wait for one audit instead of each running their own.
     */
    pthread_mutex_t audit_mu;
    int audit_valid;              /* audit_mu: audit_rep holds */
    fa_ledger_report audit_rep;   /* audit_mu */
    int64_t audit_latest_version; /* audit_mu: newest model version then */
    double audit_at;              /* audit_mu: when it ran (wall clock) */
    fa_ratelimit *by_address;     /* check-ins and updates per source address, or NULL */
    fa_ratelimit *by_device;      /* check-ins per deviceId, or NULL */
    fa_auth *auth;                /* device tokens (auth = jwt), or NULL */
    /*
     * Updates waiting for their group commit on a suspended connection,
     * which frees the HTTP thread for other devices (handlers.c), until
     * their request completes. The daemons stop only once none is left: a
     * parked device gets its answer, and libmicrohttpd forbids stopping
     * with a connection suspended.
     */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv; /* signalled when parked drops */
    int parked;             /* park_mu */
    int stopping;           /* park_mu: no new update parks */
};

/* Per-request state, owned by libmicrohttpd's req_cls from the first call
 * to the completion callback. */
typedef struct fa_api_req {
    fa_api_route route;
    int headers_seen; /* on_request has run once (the headers are complete) */
    uint64_t id;
    uint64_t start_ns; /* the request line arrived */
    char *body;
    size_t body_len, body_cap;
    int binary; /* an update in the binary form (application/octet-stream) */
    int responded;
    unsigned status;
    /* An update parked for its commit: the connection is suspended until
     * the commit resumes it; the handler then answers from the ticket. */
    fa_update_ticket *ticket;
    struct MHD_Connection *conn;
    int parked; /* counted in the server's parked until the request completes */
} fa_api_req;

/* A response under construction. */
typedef struct fa_api_reply {
    unsigned status;
    const char *content_type;
    char *body; /* owned, unless blob is set */
    size_t len;
    const unsigned char *page; /* static body (an embedded page), not owned */
    fa_api_blob *blob;         /* shared immutable body (a reference is held) */
    char etag[96];
    const char *cache_control;
    const char *allow;
    int retry_after; /* seconds, 0 = none */
    int vary_accept;
    const char *location;         /* redirect target */
    int parked;                   /* no reply yet: the connection waits for its commit */
    const char *www_authenticate; /* a 401's challenge */
    int page_headers;             /* a page: Content-Security-Policy and friends */
} fa_api_reply;

/* Answers a request whose update was parked, once its commit resumed it (handlers.c). */
void fa_api__update_answer(fa_api_req *q, fa_api_reply *r);

/* ------------------------------------------------------------ model cache */

/* Drops one reference to a blob (void * for libmicrohttpd's free callback). NULL-safe. */
void fa_api__blob_unref(void *p);

/*
 * The body of model version v in format fmt (0 tfjs json, 1 safetensors),
 * rendered or found in s's cache, with its ETag in etag[etag_cap]. *out is a
 * reference the caller drops with fa_api__blob_unref. FA_ENOTFOUND (no such
 * version), FA_ENOMEM, or the store's code. Any thread.
 */
int fa_api__model_blob(fa_api_blob **out, char *etag, size_t etag_cap, fa_server *s, int64_t v,
                       int fmt, fa_error *err) FA_MUST_CHECK;

/* -------------------------------------------------------------------- TLS */

/* GnuTLS priorities: TLS 1.2 and 1.3, AEAD ciphers only, the server's order. */
#define FA_API_TLS_PRIORITIES                                                                      \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM:"   \
    "+AES-128-GCM:-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

/*
 * Loads cfg's tls_cert_file and tls_key_file and serves them from now on;
 * on failure (FA_EINVAL, or the file's code) what is served stays. Any thread.
 */
int fa_api__tls_reload(const fa_config *cfg, fa_error *err) FA_MUST_CHECK;

/* gnutls_certificate_retrieve_function2 (MHD_OPTION_HTTPS_CERT_CALLBACK): the certificate served
 * now. */
int fa_api__tls_cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                        const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                        gnutls_pcert_st **pcert, unsigned int *pcert_length,
                        gnutls_privkey_t *pkey);

/* Frees every certificate loaded; once no daemon is running. */
void fa_api__tls_free(void);

/* --------------------------------------------------------------- handlers */

/* A request header's value, NULL when absent; borrowed from conn. */
const char *fa_api__header(struct MHD_Connection *conn, const char *name);

/* Error reply: api_code and msg, the status from the rejection table (api/errors.h). */
void fa_api__reply_fail(fa_api_reply *r, fa_code code, const char *api_code, const char *msg);

/*
 * Runs the handler of q->route on the complete request (body in q) and
 * fills r. Called once per request, on the thread libmicrohttpd calls from.
 */
void fa_api__dispatch(fa_server *s, struct MHD_Connection *conn, fa_api_req *q, const char *url,
                      fa_api_reply *r);

#endif
