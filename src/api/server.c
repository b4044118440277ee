#include "api/server.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/digest.h"
#include "aggregator/aggregator.h"
#include "aggregator/audit.h"
#include "api/auth.h"
#include "api/errors.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/request.h"
#include "api/web.h"
#include "core/log.h"
#include "core/util.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "core/base64.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "store/store.h"

/* ========================================================= snapshot cache */

/* Rendered model responses are immutable per (version, format): keep the
 * last few, reference-counted, so a burst of devices downloading version v
 * costs one render and no copies. */
#define CACHE_SLOTS 8

struct blob {
    atomic_int refs;
    char *data;
    size_t len;
};

static struct blob *blob_new_take(char *data, size_t len)
{
    struct blob *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    return b;
}

static void blob_unref(void *p)
{
    struct blob *b = p;
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b->data);
        free(b);
    }
}

struct cache_slot {
    int64_t version;
    int format; /* 0 tfjs json, 1 safetensors */
    struct blob *blob;
    char etag[96];
    uint64_t used;
};

/* ================================================================ server */

/* One listening socket: the device port, or the operator port of /metrics. */
struct listener {
    fa_server *s;
    int ops; /* the operator port: serves /metrics, /healthz and /readyz only */
};

struct fa_server {
    const fa_config *cfg;
    fa_store *store;
    fa_aggregator *agg;
    const fa_keys *keys;
    struct MHD_Daemon *daemon;    /* the device port */
    struct MHD_Daemon *op_daemon; /* the operator port, or NULL */
    uint16_t port, op_port;
    struct listener device_side, operator_side;
    int metrics_on_device_port; /* /metrics is answered on the device port */
    atomic_uint_fast64_t next_req;
    pthread_mutex_t cache_mu; /* guards cache; never held across I/O */
    struct cache_slot cache[CACHE_SLOTS];
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
};

/* ==================================================================== TLS */

/*
 * The certificate and key served, loaded from tls_cert_file / tls_key_file.
 * A reload (SIGHUP) puts a new one in front; the ones before stay until the
 * server stops, since a handshake under way may still use them.
 */
#define TLS_CHAIN_MAX 8

struct tls_cert {
    gnutls_pcert_st chain[TLS_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
    struct tls_cert *older;
};

/* libmicrohttpd's certificate callback has no closure: one TLS server per process. */
static pthread_mutex_t g_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cert *g_tls; /* g_tls_mu: the one served */

/* GnuTLS priorities: TLS 1.2 and 1.3, AEAD ciphers only, the server's order. */
#define TLS_PRIORITIES                                                                             \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM:"   \
    "+AES-128-GCM:-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

static void tls_cert_free(struct tls_cert *c)
{
    while (c != NULL) {
        struct tls_cert *older = c->older;
        for (unsigned i = 0; i < c->n; i++)
            gnutls_pcert_deinit(&c->chain[i]);
        if (c->key != NULL)
            gnutls_privkey_deinit(c->key);
        free(c);
        c = older;
    }
}

/* Whether key is the private key of cert: it signs a message cert's key verifies. */
static int tls_key_matches(gnutls_privkey_t key, gnutls_pubkey_t cert)
{
    gnutls_datum_t msg = {(unsigned char *)"fedagg", 6}, sig = {NULL, 0};
    const int pk = gnutls_pubkey_get_pk_algorithm(cert, NULL);
    gnutls_sign_algorithm_t alg =
        pk == GNUTLS_PK_EDDSA_ED25519
            ? GNUTLS_SIGN_EDDSA_ED25519
            : gnutls_pk_to_sign((gnutls_pk_algorithm_t)pk, GNUTLS_DIG_SHA256);
    int ok = gnutls_privkey_sign_data2(key, alg, 0, &msg, &sig) >= 0 &&
             gnutls_pubkey_verify_data2(cert, alg, 0, &msg, &sig) >= 0;

    gnutls_free(sig.data);
    return ok;
}

static int tls_cert_load(struct tls_cert **out, const char *cert_path, const char *key_path,
                         fa_error *err)
{
    struct tls_cert *c = calloc(1, sizeof(*c));
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    int rc = FA_OK, g;

    *out = NULL;
    if (c == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory loading the TLS certificate");
    if ((rc = fa_file_read(&cert, &cert_len, cert_path, 1 << 20, err)) < 0 ||
        (rc = fa_file_read(&key, &key_len, key_path, 1 << 20, err)) < 0)
        goto cleanup;
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)cert_len};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)key_len};
    c->n = TLS_CHAIN_MAX;
    if ((g = gnutls_pcert_list_import_x509_raw(c->chain, &c->n, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0) {
        c->n = 0;
        rc = fa_fail(err, FA_EINVAL, "%s: not a PEM certificate chain of at most %d: %s", cert_path,
                     TLS_CHAIN_MAX, gnutls_strerror(g));
        goto cleanup;
    }
    if ((g = gnutls_privkey_init(&c->key)) < 0 ||
        (g = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        rc = fa_fail(err, FA_EINVAL, "%s: not a PEM private key: %s", key_path, gnutls_strerror(g));
        goto cleanup;
    }
    if (!tls_key_matches(c->key, c->chain[0].pubkey)) {
        rc = fa_fail(err, FA_EINVAL, "%s is not the private key of %s", key_path, cert_path);
        goto cleanup;
    }
    *out = c;
    c = NULL;
cleanup:
    if (key != NULL)
        fa_crypto_wipe(key, key_len);
    free(key);
    free(cert);
    tls_cert_free(c);
    return rc;
}

/* gnutls_certificate_retrieve_function2: the certificate served now. */
static int tls_cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    int rc = -1;

    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    (void)pthread_mutex_lock(&g_tls_mu);
    if (g_tls != NULL) {
        *pcert = g_tls->chain;
        *pcert_length = g_tls->n;
        *pkey = g_tls->key;
        rc = 0;
    }
    (void)pthread_mutex_unlock(&g_tls_mu);
    return rc;
}

/* Loads the configured certificate and puts it in front. */
static int tls_reload(const fa_config *cfg, fa_error *err)
{
    struct tls_cert *c = NULL;
    int rc;

    if ((rc = tls_cert_load(&c, cfg->tls_cert_file, cfg->tls_key_file, err)) < 0)
        return rc;
    (void)pthread_mutex_lock(&g_tls_mu);
    c->older = g_tls;
    g_tls = c;
    (void)pthread_mutex_unlock(&g_tls_mu);
    return FA_OK;
}

/* Per-request state, owned by libmicrohttpd's req_cls from the first call
 * to the completion callback. */
struct req {
    fa_api_route route;
    int headers_seen; /* on_request has run once (the headers are complete) */
    uint64_t id;
    uint64_t start_ns; /* the request line arrived */
    char *body;
    size_t body_len, body_cap;
    int binary; /* an update in the binary form (application/octet-stream) */
    int responded;
    unsigned status;
};

/* A response under construction. */
struct reply {
    unsigned status;
    const char *content_type;
    char *body; /* owned, unless blob is set */
    size_t len;
    const unsigned char *page; /* static body (an embedded page), not owned */
    struct blob *blob;         /* shared immutable body (a reference is held) */
    char etag[96];
    const char *cache_control;
    const char *allow;
    int retry_after; /* seconds, 0 = none */
    int vary_accept;
    const char *location;         /* redirect target */
    const char *www_authenticate; /* a 401's challenge */
    int page_headers;             /* a page: Content-Security-Policy and friends */
};

static void reply_json(struct reply *r, unsigned status, json_t *j)
{
    r->status = status;
    r->content_type = "application/json";
    r->body = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    r->len = r->body != NULL ? strlen(r->body) : 0;
    json_decref(j);
    if (r->body == NULL)
        r->status = 503;
}

/* Error reply: code and message, the status from the rejection table (api/errors.h). */
static void reply_error(struct reply *r, const fa_error *err, const char *code)
{
    r->status = fa_api_error_status(code, err->code);
    r->content_type = "application/json";
    r->body = fa_api_error_body(err, code);
    r->len = r->body != NULL ? strlen(r->body) : 0;
    if (r->status == 503)
        r->retry_after = 2;
}

static void reply_fail(struct reply *r, fa_code code, const char *api_code, const char *msg)
{
    fa_error err = FA_ERROR_INIT;
    (void)fa_fail(&err, code, "%s", msg);
    reply_error(r, &err, api_code);
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* ============================================================== handlers */

static void h_healthz(struct reply *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(fa_server *s, struct reply *r)
{
    fa_error err = FA_ERROR_INIT;

    if (s->keys == NULL) {
        reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
        return;
    }
    if (fa_store_ping(s->store, &err) < 0) {
        reply_error(r, &err, "not_ready");
        return;
    }
    reply_json(r, 200, json_pack("{s:s,s:b,s:b}", "status", "ready", "database", 1, "keys", 1));
}

static void h_key(fa_server *s, struct reply *r)
{
    char b64[FA_BASE64_LEN(FA_CRYPTO_BOX_PK_BYTES)];

    fa_base64_encode(b64, sizeof(b64), fa_crypto_box_key_public(fa_keys_box(s->keys)),
                     FA_CRYPTO_BOX_PK_BYTES);
    json_t *ids = json_array();
    for (int i = 0; i < fa_keys_box_count(s->keys); i++)
        json_array_append_new(ids, json_string(fa_keys_box_id_at(s->keys, i)));
    reply_json(r, 200,
               json_pack("{s:s,s:s,s:s,s:o}", "keyId", fa_keys_key_id(s->keys), "publicKey", b64,
                         "algorithm", "x25519-xsalsa20poly1305-sealedbox", "acceptedKeyIds", ids));
}

static json_t *round_json(const fa_round_info *ri)
{
    return json_pack("{s:I,s:I,s:s,s:I,s:I,s:f,s:f}", "roundId", (json_int_t)ri->id, "modelVersion",
                     (json_int_t)ri->base_version, "state", ri->state, "minCohort",
                     (json_int_t)ri->min_cohort, "cohort", (json_int_t)ri->cohort, "samplingRate",
                     ri->sampling_rate, "deadline", ri->deadline);
}

static void h_round(fa_server *s, struct reply *r)
{
    fa_round_info ri;
    fa_error err = FA_ERROR_INIT;

    if (fa_aggregator_round(&ri, s->agg, &err) < 0) {
        reply_error(r, &err, err.code == FA_ENOTFOUND ? "no_open_round" : NULL);
        return;
    }
    reply_json(r, 200, round_json(&ri));
}

/* Parses a JSON object body; NULL with a reply set on failure. */
static json_t *parse_body(struct req *q, struct reply *r, int allow_empty)
{
    json_error_t jerr;
    json_t *j;

    if (q->body_len == 0 && allow_empty)
        return json_object();
    j = json_loadb(q->body != NULL ? q->body : "", q->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        char msg[200];
        (void)snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
        reply_fail(r, FA_EINVAL, "invalid_json", msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_fail(r, FA_EINVAL, "invalid_json", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/*
 * With auth = jwt: the device's subject from its bearer token, or a 401
 * reply (and 0). With auth = none: *subject_out is NULL and 1.
 */
static int authenticate(const char **subject_out, char subject[FA_AUTH_SUBJECT_MAX + 1],
                        fa_server *s, struct MHD_Connection *conn, struct reply *r)
{
    fa_error err = FA_ERROR_INIT;
    const char *code = NULL;

    *subject_out = NULL;
    if (s->auth == NULL)
        return 1;
    if (fa_auth_verify(subject, &code, s->auth, header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
                       fa_wall_seconds(), &err) < 0) {
        FA_LOG(FA_INFO, "auth.refused", "code=%s msg=\"%s\"", code, err.msg);
        reply_error(r, &err, code);
        r->www_authenticate = strcmp(code, "auth_required") == 0
                                  ? "Bearer realm=\"fedagg\""
                                  : "Bearer realm=\"fedagg\", error=\"invalid_token\"";
        return 0;
    }
    *subject_out = subject;
    return 1;
}

static void h_checkin(fa_server *s, struct MHD_Connection *conn, struct req *q, struct reply *r)
{
    char subject[FA_AUTH_SUBJECT_MAX + 1];
    const char *who = NULL;
    json_t *body = parse_body(q, r, 1), *pj, *out;
    const char *pseudonym = NULL;
    fa_checkin ck;
    fa_error err = FA_ERROR_INIT;

    if (body == NULL)
        return;
    if (!authenticate(&who, subject, s, conn, r)) {
        json_decref(body);
        return;
    }
    pj = json_object_get(body, "deviceId");
    if (who != NULL) {
        /* The token says who the device is; a deviceId in the body is ignored. */
        pseudonym = who;
        if (s->by_device != NULL &&
            !fa_ratelimit_take(s->by_device, who, strlen(who), (double)fa_now_ns() * 1e-9,
                               &r->retry_after)) {
            json_decref(body);
            fa_metrics_rate_limited();
            reply_fail(r, FA_EINVAL, "rate_limited",
                       "too many check-ins for this device: retry after Retry-After seconds");
            return;
        }
    } else if (pj != NULL) {
        if (!json_is_string(pj) || json_string_length(pj) == 0 || json_string_length(pj) > 256) {
            json_decref(body);
            reply_fail(r, FA_EINVAL, "bad_device_id",
                       "deviceId must be a string of 1 to 256 characters");
            return;
        }
        pseudonym = json_string_value(pj);
        if (s->by_device != NULL &&
            !fa_ratelimit_take(s->by_device, pseudonym, json_string_length(pj),
                               (double)fa_now_ns() * 1e-9, &r->retry_after)) {
            json_decref(body);
            fa_metrics_rate_limited();
            reply_fail(r, FA_EINVAL, "rate_limited",
                       "too many check-ins for this deviceId: retry after Retry-After seconds");
            return;
        }
    }
    if (fa_aggregator_checkin(&ck, s->agg, pseudonym, &err) < 0) {
        json_decref(body);
        reply_error(r, &err,
                    err.code == FA_ECONFLICT   ? "already_checked_in"
                    : err.code == FA_ENOTFOUND ? "no_open_round"
                    : err.code == FA_EINVAL    ? "bad_device_id"
                                               : NULL);
        return;
    }
    json_decref(body);
    out = round_json(&ck.round);
    json_object_set_new(out, "selected", json_boolean(ck.selected));
    if (ck.selected)
        json_object_set_new(out, "roundToken", json_string(ck.token));
    reply_json(r, 200, out);
}

static void h_update(fa_server *s, struct MHD_Connection *conn, struct req *q, struct reply *r)
{
    fa_api_update u;
    fa_update_request ur;
    fa_update_receipt rc;
    const char *code = NULL, *who = NULL;
    char subject[FA_AUTH_SUBJECT_MAX + 1];
    fa_error err = FA_ERROR_INIT;
    int prc;

    if (!authenticate(&who, subject, s, conn, r)) {
        fa_metrics_update_rejected("unauthorized");
        return;
    }
    if (q->binary) {
        unsigned char *box = (unsigned char *)q->body;
        q->body = NULL; /* taken by the update, or freed */
        prc = fa_api_update_binary(
            &u, &code, header(conn, FA_API_HDR_MODEL_VERSION), header(conn, FA_API_HDR_NUM_SAMPLES),
            header(conn, FA_API_HDR_ROUND_TOKEN), header(conn, FA_API_HDR_KEY_ID), &box,
            q->body_len, (size_t)s->cfg->max_body_bytes, &err);
    } else {
        prc = fa_api_update_parse(&u, &code, q->body, q->body_len, (size_t)s->cfg->max_body_bytes,
                                  &err);
    }
    if (prc < 0) {
        reply_error(r, &err, code);
        fa_metrics_update_rejected(code != NULL ? code : fa_code_name(err.code));
        return;
    }
    ur.model_version = u.model_version;
    ur.num_samples = u.num_samples;
    ur.round_token = u.round_token;
    ur.key_id = u.key_id;
    ur.box = u.box;
    ur.box_len = u.box_len;
    ur.subject = who;
    if (fa_aggregator_accept(&rc, &code, s->agg, &ur, &err) < 0) {
        reply_error(r, &err, code);
        fa_metrics_update_rejected(code != NULL ? code : fa_code_name(err.code));
    } else {
        fa_metrics_update_accepted();
        reply_json(r, 202,
                   json_pack("{s:s,s:I,s:I,s:b}", "receipt", rc.receipt, "roundId",
                             (json_int_t)rc.round_id, "cohort", (json_int_t)rc.cohort, "duplicate",
                             rc.duplicate));
    }
    fa_api_update_done(&u);
}

static void h_model_latest(fa_server *s, struct reply *r)
{
    fa_store_model m;
    fa_error err = FA_ERROR_INIT;
    char sha[65], path[96];
    json_t *out, *metrics = NULL;

    if (fa_store_model_get(&m, s->store, -1, 0, &err) < 0) {
        reply_error(r, &err, err.code == FA_ENOTFOUND ? "no_model" : NULL);
        return;
    }
    fa_hex_encode(sha, m.sha256, 32);
    if (m.metrics != NULL)
        metrics = json_loads(m.metrics, 0, NULL);
    out = json_pack("{s:I,s:I,s:s,s:f}", "version", (json_int_t)m.version, "parent",
                    (json_int_t)m.parent, "sha256", sha, "createdAt", m.created_at);
    (void)snprintf(path, sizeof(path), "/api/federated/model/%" PRId64, m.version);
    json_object_set_new(out, "formats",
                        json_pack("{s:s,s:s+}", "tfjs", path, "safetensors", path, ".safetensors"));
    json_object_set_new(out, "metrics", metrics != NULL ? metrics : json_object());
    fa_store_model_done(&m);
    reply_json(r, 200, out);
}

/* Renders (or finds in the cache) the body of version v in format fmt. */
static int model_blob(struct blob **out, char *etag, size_t etag_cap, fa_server *s, int64_t v,
                      int fmt, fa_error *err)
{
    fa_store_model m;
    fa_params *params = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    struct blob *b = NULL;
    char *json = NULL, sha[65];
    size_t json_len = 0;
    int rc;

    *out = NULL;
    (void)pthread_mutex_lock(&s->cache_mu);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *c = &s->cache[i];
        if (c->blob != NULL && c->version == v && c->format == fmt) {
            atomic_fetch_add(&c->blob->refs, 1);
            c->used = ++s->cache_clock;
            *out = c->blob;
            (void)snprintf(etag, etag_cap, "%s", c->etag);
            (void)pthread_mutex_unlock(&s->cache_mu);
            return FA_OK;
        }
    }
    (void)pthread_mutex_unlock(&s->cache_mu);

    /* Render outside the lock; two threads racing on one version both
     * render and one result is kept. */
    if ((rc = fa_store_model_get(&m, s->store, v, 1, err)) < 0)
        return rc;
    fa_hex_encode(sha, m.sha256, 32);
    if (fmt == 1) {
        b = blob_new_take((char *)m.snapshot, m.snapshot_len);
        if (b != NULL)
            m.snapshot = NULL;
        (void)snprintf(etag, etag_cap, "\"%s\"", sha);
    } else {
        if ((rc = fa_snapshot_safetensors_parse(&params, &meta, m.snapshot, m.snapshot_len,
                                                FA_PARAMS_MAX_ITEMS, err)) < 0 ||
            (rc = fa_snapshot_tfjs_json(&json, &json_len, params, &meta, err)) < 0)
            goto cleanup;
        b = blob_new_take(json, json_len);
        if (b != NULL)
            json = NULL;
        (void)snprintf(etag, etag_cap, "\"%s-tfjs\"", sha);
    }
    if (b == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory rendering model version %" PRId64, v);
        goto cleanup;
    }
    (void)pthread_mutex_lock(&s->cache_mu);
    int victim = 0;
    for (int i = 1; i < CACHE_SLOTS; i++)
        if (s->cache[i].used < s->cache[victim].used)
            victim = i;
    blob_unref(s->cache[victim].blob);
    s->cache[victim].blob = b;
    atomic_fetch_add(&b->refs, 1);
    s->cache[victim].version = v;
    s->cache[victim].format = fmt;
    s->cache[victim].used = ++s->cache_clock;
    (void)snprintf(s->cache[victim].etag, sizeof(s->cache[victim].etag), "%s", etag);
    (void)pthread_mutex_unlock(&s->cache_mu);
    *out = b;
    rc = FA_OK;
cleanup:
    free(json);
    fa_params_free(params);
    fa_store_model_done(&m);
    return rc;
}

static void h_model(fa_server *s, struct MHD_Connection *conn, const char *url, struct reply *r)
{
    const char *accept = header(conn, MHD_HTTP_HEADER_ACCEPT);
    const char *inm = header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    fa_error err = FA_ERROR_INIT;
    struct blob *b = NULL;
    int64_t v;
    int fmt, by_accept;

    if (fa_api_model_path(&v, &fmt, &by_accept, url + strlen("/api/federated/model/"), &err) < 0) {
        reply_error(r, &err, "not_found");
        return;
    }
    if (by_accept)
        fmt = accept != NULL && strstr(accept, "application/octet-stream") != NULL;
    if (model_blob(&b, r->etag, sizeof(r->etag), s, v, fmt, &err) < 0) {
        reply_error(r, &err, err.code == FA_ENOTFOUND ? "unknown_model_version" : NULL);
        return;
    }
    r->cache_control = "public, max-age=31536000, immutable";
    r->vary_accept = by_accept;
    if (inm != NULL && strstr(inm, r->etag) != NULL) {
        blob_unref(b);
        r->status = 304;
        return;
    }
    r->status = 200;
    r->content_type = fmt == 1 ? "application/octet-stream" : "application/json";
    r->blob = b;
}

#define LEDGER_PAGE_DEFAULT 1000  /* entries per page when ?limit is absent */
#define LEDGER_PAGE_MAX     10000 /* largest ?limit */

/* A non-negative integer query argument in [0, max]; def when absent. -1 when malformed. */
static int64_t query_i64(struct MHD_Connection *conn, const char *name, int64_t def, int64_t max)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    int64_t x;

    if (v == NULL)
        return def;
    if (fa_parse_i64(&x, v) < 0 || x < 0 || x > max)
        return -1;
    return x;
}

/*
 * GET /api/privacy/ledger?after=SEQ&limit=N: the entries with seq > SEQ
 * (default 0), at most N (default 1000, at most 10000), in seq order, and
 * "next", the after= of the following page (null on the last one). Each
 * entry carries its exact canonical text ("text", what the hash covers)
 * besides the parsed object.
 */
static void h_ledger(fa_server *s, struct MHD_Connection *conn, struct reply *r)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;
    fa_error err = FA_ERROR_INIT;
    const int64_t after = query_i64(conn, "after", 0, INT64_MAX - 1);
    const int64_t limit = query_i64(conn, "limit", LEDGER_PAGE_DEFAULT, LEDGER_PAGE_MAX);
    json_t *arr, *page;

    if (after < 0 || limit < 1) {
        reply_fail(r, FA_EINVAL, "bad_request",
                   "after must be a sequence number >= 0 and limit in 1..10000");
        return;
    }
    if (fa_store_ledger_page(&rows, &n, s->store, after, limit, &err) < 0) {
        reply_error(r, &err, NULL);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, fa_audit_row_json(&rows[i]));
    page = json_pack("{s:o,s:o}", "entries", arr, "next",
                     (int64_t)n == limit ? json_integer((json_int_t)rows[n - 1].seq) : json_null());
    fa_store_ledger_rows_free(rows, n);
    reply_json(r, 200, page);
}

#define AUDIT_TTL_S 60.0 /* a cached audit is redone at least this often */

/*
 * The verified ledger: a full audit (fa_audit_ledger) when the ledger head
 * or the newest model version moved since the last one, or it is older
 * than AUDIT_TTL_S (an entry edited in place behind an unchanged head is
 * noticed within that time), the cached report otherwise, so repeated
 * requests cost two indexed reads, not a re-verification of every entry. FA_OK with *out,
 * FA_ECONFLICT (the ledger does not verify; err names the entry), or the store's code.
 */
static int audited(fa_ledger_report *out, fa_server *s, fa_error *err)
{
    fa_store_ledger_row head;
    fa_store_model latest;
    int64_t head_seq = 0, latest_version = -1;
    unsigned char head_hash[32] = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = fa_store_ledger_last(&head, s->store, err);
    if (rc == FA_OK) {
        head_seq = head.seq;
        memcpy(head_hash, head.hash, 32);
        fa_store_ledger_row_done(&head);
    } else if (rc != FA_ENOTFOUND) {
        return rc;
    }
    rc = fa_store_model_get(&latest, s->store, -1, 0, err);
    if (rc == FA_OK) {
        latest_version = latest.version;
        fa_store_model_done(&latest);
    } else if (rc != FA_ENOTFOUND) {
        return rc;
    }
    (void)pthread_mutex_lock(&s->audit_mu);
    if (!(s->audit_valid && (int64_t)s->audit_rep.entries == head_seq &&
          memcmp(s->audit_rep.head, head_hash, 32) == 0 &&
          s->audit_latest_version == latest_version &&
          fa_wall_seconds() - s->audit_at < AUDIT_TTL_S)) {
        s->audit_valid = 0;
        rc =
            fa_audit_ledger(&s->audit_rep, NULL, NULL, s->store, fa_keys_sign_public(s->keys), err);
        /* Only a clean audit is kept; a failing one is re-run (and logged) each time. */
        if (rc == FA_OK) {
            s->audit_valid = 1;
            s->audit_latest_version = latest_version;
            s->audit_at = fa_wall_seconds();
        }
        *out = s->audit_rep;
    } else {
        *out = s->audit_rep;
        rc = FA_OK;
    }
    (void)pthread_mutex_unlock(&s->audit_mu);
    return rc;
}

/* A ledger that does not verify, or the store failing, answered from audited()'s code. */
static void reply_audit_failed(struct reply *r, int rc, const fa_ledger_report *rep,
                               const fa_error *err)
{
    if (rc == FA_ECONFLICT) {
        FA_LOG(FA_ERROR, "ledger.invalid", "bad_seq=%" PRId64 " msg=\"%s\"", rep->bad_seq,
               err->msg);
        reply_error(r, err, "ledger_invalid");
        return;
    }
    reply_error(r, err, NULL);
}

/* The ledger key's id: the first 16 hex digits of SHA-256 of its public key. */
static void ledger_key_id(char id[17], const fa_server *s)
{
    unsigned char digest[32];

    fa_sha256(digest, fa_keys_sign_public(s->keys), FA_KEYS_PK_BYTES);
    fa_hex_encode(id, digest, 8);
}

#define HEAD_FORMAT "fedagg-ledger-head-v1"

/*
 * GET /api/privacy/ledger/head: the verified ledger's newest entry (seq
 * and hash) in a statement signed now with the ledger key, so a client can
 * keep a signed, dated claim of how long the ledger was and later demand
 * that every entry up to it still be served. The statement is the exact
 * text {"format":"fedagg-ledger-head-v1","seq":N,"hash":"H","signed_at":T}
 * (T in seconds since the epoch) and the signature is Ed25519 over its
 * SHA-256, as for entries (docs/privacy.md).
 */
static void h_ledger_head(fa_server *s, struct reply *r)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    char hash[2 * FA_LEDGER_HASH_BYTES + 1], sig_hex[2 * FA_LEDGER_SIG_BYTES + 1];
    char statement[192], key_id[17];
    unsigned char digest[32], sig[FA_LEDGER_SIG_BYTES];
    int64_t now;
    int rc;

    if (s->keys == NULL) {
        reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
        return;
    }
    if ((rc = audited(&rep, s, &err)) < 0) {
        reply_audit_failed(r, rc, &rep, &err);
        return;
    }
    now = (int64_t)fa_wall_seconds();
    fa_hex_encode(hash, rep.head, sizeof(rep.head));
    (void)snprintf(statement, sizeof(statement),
                   "{\"format\":\"" HEAD_FORMAT "\",\"seq\":%" PRId64 ",\"hash\":\"%s\","
                   "\"signed_at\":%" PRId64 "}",
                   (int64_t)rep.entries, hash, now);
    fa_sha256(digest, statement, strlen(statement));
    fa_crypto_sign(sig, fa_keys_sign(s->keys), digest, sizeof(digest));
    fa_hex_encode(sig_hex, sig, sizeof(sig));
    ledger_key_id(key_id, s);
    reply_json(r, 200,
               json_pack("{s:I,s:s,s:I,s:f,s:s,s:s,s:s}", "seq", (json_int_t)rep.entries, "hash",
                         hash, "signedAt", (json_int_t)now, "epsilon", rep.epsilon, "statement",
                         statement, "signature", sig_hex, "keyId", key_id));
}

/*
 * The spend as the verified ledger states it, not as the cumulative_epsilon
 * column says: the column is an unsigned copy any database writer could
 * lower. The whole chain (hashes, signatures, the accountant) and the
 * model versions are re-verified whenever the ledger head or the newest
 * version moved, so the first request after a round costs time in
 * proportion to the ledger and the others two indexed reads (docs/api.md). The budget is the one in
 * force at the last entry; before the first entry it is the configured one.
 */
static void h_budget(fa_server *s, struct reply *r)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    char head[2 * FA_LEDGER_HASH_BYTES + 1];
    double eps_max, delta, remaining;
    int rc;

    if (s->keys == NULL) {
        reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
        return;
    }
    if ((rc = audited(&rep, s, &err)) < 0) {
        reply_audit_failed(r, rc, &rep, &err);
        return;
    }
    eps_max = rep.entries > 0 ? rep.epsilon_max : s->cfg->epsilon_max;
    delta = rep.entries > 0 ? rep.delta : s->cfg->delta;
    remaining = eps_max - rep.epsilon;
    fa_hex_encode(head, rep.head, sizeof(rep.head));
    reply_json(
        r, 200,
        json_pack("{s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:s,s:b,s:b,s:I,s:I,s:I,s:s?}", "epsilonSpent",
                  rep.epsilon, "epsilonMax", eps_max, "epsilonRemaining",
                  remaining > 0 ? remaining : 0.0, "delta", delta, "releases",
                  (json_int_t)rep.releases, "refusals", (json_int_t)rep.refusals, "abandonments",
                  (json_int_t)rep.abandonments, "accountant",
                  rep.entries > 0 ? fa_accountant_short_name(rep.accountant) : s->cfg->accountant,
                  "verified", 1, "private", rep.seeded_releases == 0, "seededReleases",
                  (json_int_t)rep.seeded_releases, "budgetChanges", (json_int_t)rep.budget_changes,
                  "entries", (json_int_t)rep.entries, "head", rep.entries > 0 ? head : NULL));
}

/*
 * GET /api/privacy/key: the Ed25519 public key the ledger entries and head
 * statements are signed with (hex, as `fedagg keygen` writes sign.pk) and its
 * id (the first 16 hex digits of its SHA-256). An auditor pins it once;
 * checking a ledger against the key the same server serves proves only that
 * the server signed it.
 */
static void h_privacy_key(fa_server *s, struct reply *r)
{
    char hex[2 * FA_KEYS_PK_BYTES + 1], id[17];

    if (s->keys == NULL) {
        reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
        return;
    }
    fa_hex_encode(hex, fa_keys_sign_public(s->keys), FA_KEYS_PK_BYTES);
    ledger_key_id(id, s);
    reply_json(r, 200,
               json_pack("{s:s,s:s,s:s}", "keyId", id, "publicKey", hex, "algorithm", "ed25519"));
}

/*
 * GET /privacy/...: the audit page, embedded at build time (web/). The bare
 * folder name redirects to the folder so the page's relative links resolve.
 */
static void h_audit_page(struct MHD_Connection *conn, const char *url, struct reply *r)
{
    const char *inm = header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const struct fa_web_file *f;

    if (strcmp(url, "/privacy") == 0) {
        r->status = 308;
        r->location = "/privacy/";
        return;
    }
    if ((f = fa_web_find(url)) == NULL) {
        reply_fail(r, FA_ENOTFOUND, "not_found", "no such page");
        return;
    }
    (void)snprintf(r->etag, sizeof(r->etag), "%s", f->etag);
    r->cache_control = "no-cache";
    r->page_headers = 1;
    if (inm != NULL && strstr(inm, f->etag) != NULL) {
        r->status = 304;
        return;
    }
    r->status = 200;
    r->content_type = f->content_type;
    r->page = f->data;
    r->len = f->len;
}

static void h_metrics(fa_server *s, struct reply *r)
{
    fa_aggregator_stats st;
    fa_metrics_extra extra;

    fa_aggregator_stats_get(&st, s->agg);
    extra.rounds_closed = st.rounds_closed;
    extra.rounds_abandoned = st.rounds_abandoned;
    extra.rounds_refused = st.rounds_refused;
    extra.updates_folded = st.updates_folded;
    extra.cumulative_epsilon = st.cumulative_epsilon;
    extra.epsilon_budget = s->cfg->epsilon_max;
    r->body = fa_metrics_render(&extra, &r->len);
    r->status = r->body != NULL ? 200 : 503;
    r->content_type = "text/plain; version=0.0.4";
}

/* ======================================================= libmicrohttpd glue */

/* Whether the Content-Type ct is the media type `type` (parameters allowed). */
static int has_type(const char *ct, const char *type)
{
    size_t n = strlen(type);
    return ct != NULL && strncasecmp(ct, type, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct req *q, struct reply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char num[16];

    if (r->blob != NULL) {
        resp = MHD_create_response_from_buffer_with_free_callback_cls(r->blob->len, r->blob->data,
                                                                      blob_unref, r->blob);
        if (resp == NULL)
            blob_unref(r->blob);
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

static void dispatch(fa_server *s, struct MHD_Connection *conn, struct req *q, const char *url,
                     struct reply *r)
{
    switch (q->route) {
    case FA_ROUTE_KEY:
        h_key(s, r);
        break;
    case FA_ROUTE_CHECKIN:
        h_checkin(s, conn, q, r);
        break;
    case FA_ROUTE_ROUND:
        h_round(s, r);
        break;
    case FA_ROUTE_UPDATE:
        h_update(s, conn, q, r);
        break;
    case FA_ROUTE_MODEL_LATEST:
        h_model_latest(s, r);
        break;
    case FA_ROUTE_MODEL:
        h_model(s, conn, url, r);
        break;
    case FA_ROUTE_LEDGER:
        h_ledger(s, conn, r);
        break;
    case FA_ROUTE_LEDGER_HEAD:
        h_ledger_head(s, r);
        break;
    case FA_ROUTE_BUDGET:
        h_budget(s, r);
        break;
    case FA_ROUTE_PRIVACY_KEY:
        h_privacy_key(s, r);
        break;
    case FA_ROUTE_AUDIT_PAGE:
        h_audit_page(conn, url, r);
        break;
    case FA_ROUTE_HEALTHZ:
        h_healthz(r);
        break;
    case FA_ROUTE_READYZ:
        h_readyz(s, r);
        break;
    case FA_ROUTE_METRICS:
        h_metrics(s, r);
        break;
    case FA_ROUTE_OTHER:
    case FA_ROUTE_COUNT:
        reply_fail(r, FA_ENOTFOUND, "not_found", "no such endpoint");
        break;
    }
}

/* Whether listener l answers route (others are 404 there). */
static int serves(const struct listener *l, fa_api_route route)
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
    got = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    if (got == NULL || strncasecmp(got, "Bearer ", 7) != 0)
        return 0;
    got += 7;
    return strlen(got) == n && fa_crypto_equal(got, want, n);
}

/* Whether the request has taken longer than request_max_s since its request line. */
static int too_slow(const fa_server *s, const struct req *q)
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
    struct req *q = calloc(1, sizeof(*q));

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
    const struct listener *l = cls;
    fa_server *s = l->s;
    struct req *q = *req_cls;
    struct reply r;
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
            reply_fail(&r, FA_EINVAL, "request_timeout",
                       "the request took longer than request_max_s to arrive");
            return send_reply(conn, q, &r);
        }
        if (q->route == FA_ROUTE_OTHER) {
            reply_fail(&r, FA_ENOTFOUND, "not_found", "no such endpoint");
            return send_reply(conn, q, &r);
        }
        if (strcmp(method, allowed) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(allowed, "GET") == 0)) {
            char msg[96];
            (void)snprintf(msg, sizeof(msg), "%s is not allowed here (use %s)", method, allowed);
            reply_fail(&r, FA_EINVAL, "method_not_allowed", msg);
            r.allow = allowed;
            return send_reply(conn, q, &r);
        }
        if (q->route == FA_ROUTE_METRICS && !metrics_token_ok(s, conn)) {
            reply_fail(&r, FA_EINVAL, "unauthorized",
                       "GET /metrics needs Authorization: Bearer <metrics_token>");
            r.www_authenticate = "Bearer realm=\"fedagg metrics\"";
            return send_reply(conn, q, &r);
        }
        if ((q->route == FA_ROUTE_CHECKIN || q->route == FA_ROUTE_UPDATE) &&
            !address_allowed(s, conn, &r.retry_after)) {
            fa_metrics_rate_limited();
            reply_fail(&r, FA_EINVAL, "rate_limited",
                       "too many requests from this address: retry after Retry-After seconds");
            return send_reply(conn, q, &r);
        }
        if (strcmp(allowed, "POST") == 0) {
            const char *ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
            const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
            int64_t len = 0;
            q->binary = q->route == FA_ROUTE_UPDATE && has_type(ct, "application/octet-stream");
            if (!q->binary && !has_type(ct, "application/json")) {
                reply_fail(&r, FA_EINVAL, "unsupported_media_type",
                           q->route == FA_ROUTE_UPDATE ? "content type must be application/json or "
                                                         "application/octet-stream"
                                                       : "content type must be application/json");
                return send_reply(conn, q, &r);
            }
            if (cl != NULL && (fa_parse_i64(&len, cl) < 0 || len > s->cfg->max_body_bytes)) {
                char msg[96];
                (void)snprintf(msg, sizeof(msg), "request body is over the limit of %lld bytes",
                               (long long)s->cfg->max_body_bytes);
                reply_fail(&r, FA_ETOOBIG, "body_too_large", msg);
                return send_reply(conn, q, &r);
            }
            /* The announced length (bounded above): one allocation, no regrowth. */
            if (cl != NULL && len > 0) {
                q->body = malloc((size_t)len + 1);
                if (q->body == NULL) {
                    reply_fail(&r, FA_ENOMEM, "out_of_memory", "out of memory");
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
            reply_fail(&r, FA_ETOOBIG, "body_too_large", msg);
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
                reply_fail(&r, FA_ENOMEM, "out_of_memory", "out of memory");
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
    dispatch(s, conn, q, url, &r);
    fa_log_set_request(0);
    return send_reply(conn, q, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *q = *req_cls;

    (void)cls;
    (void)conn;
    if (q == NULL)
        return;
    fa_metrics_request((int)q->route, q->responded ? q->status : 499, fa_now_ns() - q->start_ns);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        FA_LOG(FA_DEBUG, "http.aborted", "req=%" PRIu64 " route=%s code=%d", q->id,
               fa_api_route_name(q->route), (int)toe);
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
static int start_daemon(struct MHD_Daemon **out, uint16_t *port_out, struct listener *l,
                        const char *key, const char *address, int64_t port, unsigned threads,
                        fa_error *err)
{
    const fa_config *cfg = l->s->cfg;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
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
                                DAEMON_OPTIONS, MHD_OPTION_HTTPS_CERT_CALLBACK, tls_cert_cb,
                                MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_END);
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
        if ((rc = tls_reload(cfg, err)) < 0)
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

    if (srv->cfg->tls_cert_file[0] != '\0' && (rc = tls_reload(srv->cfg, err)) < 0)
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
    if (srv->op_daemon != NULL)
        MHD_stop_daemon(srv->op_daemon);
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    for (int i = 0; i < CACHE_SLOTS; i++)
        blob_unref(srv->cache[i].blob);
    (void)pthread_mutex_destroy(&srv->cache_mu);
    (void)pthread_mutex_destroy(&srv->audit_mu);
    fa_ratelimit_free(srv->by_address);
    fa_ratelimit_free(srv->by_device);
    fa_auth_free(srv->auth);
    (void)pthread_mutex_lock(&g_tls_mu);
    tls_cert_free(g_tls);
    g_tls = NULL;
    (void)pthread_mutex_unlock(&g_tls_mu);
    free(srv);
}
