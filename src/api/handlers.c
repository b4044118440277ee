/*
 * The handlers: one function per route, each filling a reply from the
 * complete request, and the dispatch from route to handler. They run
 * concurrently on libmicrohttpd's threads; what they share is the server's
 * immutable state, the snapshot cache and the cached audit (audit_mu).
 */
#include "api/internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/aggregator.h"
#include "aggregator/audit.h"
#include "api/auth.h"
#include "api/errors.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/request.h"
#include "api/web.h"
#include "core/base64.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/round_state.h"
#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "store/store.h"

/* ---------------------------------------------------------------- replies */

static void reply_json(fa_api_reply *r, unsigned status, json_t *j)
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
static void reply_error(fa_api_reply *r, const fa_error *err, const char *code)
{
    r->status = fa_api_error_status(code, err->code);
    r->content_type = "application/json";
    r->body = fa_api_error_body(err, code);
    r->len = r->body != NULL ? strlen(r->body) : 0;
    if (r->status == 503)
        r->retry_after = 2;
}

void fa_api__reply_fail(fa_api_reply *r, fa_code code, const char *api_code, const char *msg)
{
    fa_error err = FA_ERROR_INIT;
    (void)fa_fail(&err, code, "%s", msg);
    reply_error(r, &err, api_code);
}

const char *fa_api__header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* ------------------------------------------------------------- endpoints */

static void h_healthz(fa_api_reply *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(fa_server *s, fa_api_reply *r)
{
    fa_error err = FA_ERROR_INIT;

    if (s->keys == NULL) {
        fa_api__reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
        return;
    }
    if (fa_store_ping(s->store, &err) < 0) {
        reply_error(r, &err, "not_ready");
        return;
    }
    reply_json(r, 200, json_pack("{s:s,s:b,s:b}", "status", "ready", "database", 1, "keys", 1));
}

static void h_key(fa_server *s, fa_api_reply *r)
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
                     (json_int_t)ri->base_version, "state", fa_round_state_name(ri->state),
                     "minCohort", (json_int_t)ri->min_cohort, "cohort", (json_int_t)ri->cohort,
                     "samplingRate", ri->sampling_rate, "deadline", ri->deadline);
}

static void h_round(fa_server *s, fa_api_reply *r)
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
static json_t *parse_body(fa_api_req *q, fa_api_reply *r, int allow_empty)
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
        fa_api__reply_fail(r, FA_EINVAL, "invalid_json", msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        fa_api__reply_fail(r, FA_EINVAL, "invalid_json", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/*
 * With auth = jwt: the device's subject from its bearer token, or a 401
 * reply (and 0). With auth = none: *subject_out is NULL and 1.
 */
static int authenticate(const char **subject_out, char subject[FA_AUTH_SUBJECT_MAX + 1],
                        fa_server *s, struct MHD_Connection *conn, fa_api_reply *r)
{
    fa_error err = FA_ERROR_INIT;
    const char *code = NULL;

    *subject_out = NULL;
    if (s->auth == NULL)
        return 1;
    if (fa_auth_verify(subject, &code, s->auth, fa_api__header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
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

static void h_checkin(fa_server *s, struct MHD_Connection *conn, fa_api_req *q, fa_api_reply *r)
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
            fa_api__reply_fail(
                r, FA_EINVAL, "rate_limited",
                "too many check-ins for this device: retry after Retry-After seconds");
            return;
        }
    } else if (pj != NULL) {
        if (!json_is_string(pj) || json_string_length(pj) == 0 || json_string_length(pj) > 256) {
            json_decref(body);
            fa_api__reply_fail(r, FA_EINVAL, "bad_device_id",
                               "deviceId must be a string of 1 to 256 characters");
            return;
        }
        pseudonym = json_string_value(pj);
        if (s->by_device != NULL &&
            !fa_ratelimit_take(s->by_device, pseudonym, json_string_length(pj),
                               (double)fa_now_ns() * 1e-9, &r->retry_after)) {
            json_decref(body);
            fa_metrics_rate_limited();
            fa_api__reply_fail(
                r, FA_EINVAL, "rate_limited",
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

/* The answer to an update: 202 with its receipt, or the error that refused it. */
static void update_reply(fa_api_reply *r, int rc, const fa_update_receipt *rcpt, const char *code,
                         const fa_error *err)
{
    if (rc < 0) {
        reply_error(r, err, code);
        fa_metrics_update_rejected(code != NULL ? code : fa_code_name(err->code));
        return;
    }
    fa_metrics_update_accepted();
    reply_json(r, 202,
               json_pack("{s:s,s:I,s:I,s:b}", "receipt", rcpt->receipt, "roundId",
                         (json_int_t)rcpt->round_id, "cohort", (json_int_t)rcpt->cohort,
                         "duplicate", rcpt->duplicate));
}

/*
 * Whether an opened update may wait for its commit on a suspended
 * connection (counted as parked), rather than holding its HTTP thread: not
 * while the server stops, and at most commit_batch_max at a time (each
 * holds an opened update in memory).
 */
static int may_park(fa_server *s)
{
    int ok;

    (void)pthread_mutex_lock(&s->park_mu);
    ok = !s->stopping && s->parked < s->cfg->commit_batch_max;
    if (ok)
        s->parked++;
    (void)pthread_mutex_unlock(&s->park_mu);
    return ok;
}

/* The group commit settled a parked update: wake its connection (the
 * handler answers; the request's completion unparks it, server.c). */
static void on_committed(void *arg)
{
    fa_api_req *q = arg;

    MHD_resume_connection(q->conn);
}

void fa_api__update_answer(fa_api_req *q, fa_api_reply *r)
{
    fa_update_receipt rcpt;
    const char *code = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_update_ticket *t = q->ticket;
    int rc;

    q->ticket = NULL;
    rc = fa_aggregator_accept_result(&rcpt, &code, t, &err);
    update_reply(r, rc, &rcpt, code, &err);
}

static void h_update(fa_server *s, struct MHD_Connection *conn, fa_api_req *q, fa_api_reply *r)
{
    fa_api_update u;
    fa_update_request ur;
    fa_update_receipt rcpt;
    fa_update_ticket *t = NULL;
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
        prc = fa_api_update_binary(&u, &code, fa_api__header(conn, FA_API_HDR_MODEL_VERSION),
                                   fa_api__header(conn, FA_API_HDR_NUM_SAMPLES),
                                   fa_api__header(conn, FA_API_HDR_ROUND_TOKEN),
                                   fa_api__header(conn, FA_API_HDR_KEY_ID), &box, q->body_len,
                                   (size_t)s->cfg->max_body_bytes, &err);
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
    prc = fa_aggregator_accept_open(&t, &code, s->agg, &ur, &err);
    fa_api_update_done(&u); /* the box is opened (or refused): not needed any more */
    if (prc < 0) {
        update_reply(r, prc, &rcpt, code, &err);
    } else if (may_park(s)) {
        /* Suspended before it is queued: the commit may resume it at once. */
        q->ticket = t;
        q->conn = conn;
        q->parked = 1;
        MHD_suspend_connection(conn);
        fa_aggregator_accept_queue(s->agg, t, on_committed, q);
        r->parked = 1;
    } else {
        prc = fa_aggregator_accept_commit(&rcpt, &code, s->agg, t, &err);
        update_reply(r, prc, &rcpt, code, &err);
    }
}

static void h_model_latest(fa_server *s, fa_api_reply *r)
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

static void h_model(fa_server *s, struct MHD_Connection *conn, const char *url, fa_api_reply *r)
{
    const char *accept = fa_api__header(conn, MHD_HTTP_HEADER_ACCEPT);
    const char *inm = fa_api__header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    fa_error err = FA_ERROR_INIT;
    fa_api_blob *b = NULL;
    int64_t v;
    int fmt, by_accept;

    if (fa_api_model_path(&v, &fmt, &by_accept, url + strlen("/api/federated/model/"), &err) < 0) {
        reply_error(r, &err, "not_found");
        return;
    }
    if (by_accept)
        fmt = accept != NULL && strstr(accept, "application/octet-stream") != NULL;
    if (fa_api__model_blob(&b, r->etag, sizeof(r->etag), s, v, fmt, &err) < 0) {
        reply_error(r, &err, err.code == FA_ENOTFOUND ? "unknown_model_version" : NULL);
        return;
    }
    r->cache_control = "public, max-age=31536000, immutable";
    r->vary_accept = by_accept;
    if (inm != NULL && strstr(inm, r->etag) != NULL) {
        fa_api__blob_unref(b);
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
static void h_ledger(fa_server *s, struct MHD_Connection *conn, fa_api_reply *r)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;
    fa_error err = FA_ERROR_INIT;
    const int64_t after = query_i64(conn, "after", 0, INT64_MAX - 1);
    const int64_t limit = query_i64(conn, "limit", LEDGER_PAGE_DEFAULT, LEDGER_PAGE_MAX);
    json_t *arr, *page;

    if (after < 0 || limit < 1) {
        fa_api__reply_fail(r, FA_EINVAL, "bad_request",
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
static void reply_audit_failed(fa_api_reply *r, int rc, const fa_ledger_report *rep,
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
static void h_ledger_head(fa_server *s, fa_api_reply *r)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    char hash[2 * FA_LEDGER_HASH_BYTES + 1], sig_hex[2 * FA_LEDGER_SIG_BYTES + 1];
    char statement[192], key_id[17];
    unsigned char digest[32], sig[FA_LEDGER_SIG_BYTES];
    int64_t now;
    int rc;

    if (s->keys == NULL) {
        fa_api__reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
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
static void h_budget(fa_server *s, fa_api_reply *r)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    char head[2 * FA_LEDGER_HASH_BYTES + 1];
    double eps_max, delta, remaining;
    int rc;

    if (s->keys == NULL) {
        fa_api__reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
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
static void h_privacy_key(fa_server *s, fa_api_reply *r)
{
    char hex[2 * FA_KEYS_PK_BYTES + 1], id[17];

    if (s->keys == NULL) {
        fa_api__reply_fail(r, FA_EUNAVAIL, "not_ready", "server keys are not loaded");
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
static void h_audit_page(struct MHD_Connection *conn, const char *url, fa_api_reply *r)
{
    const char *inm = fa_api__header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const struct fa_web_file *f;

    if (strcmp(url, "/privacy") == 0) {
        r->status = 308;
        r->location = "/privacy/";
        return;
    }
    if ((f = fa_web_find(url)) == NULL) {
        fa_api__reply_fail(r, FA_ENOTFOUND, "not_found", "no such page");
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

static void h_metrics(fa_server *s, fa_api_reply *r)
{
    fa_aggregator_stats st;
    fa_metrics_extra extra;

    fa_aggregator_stats_get(&st, s->agg);
    extra.rounds_closed = st.rounds_closed;
    extra.rounds_abandoned = st.rounds_abandoned;
    extra.rounds_refused = st.rounds_refused;
    extra.updates_folded = st.updates_folded;
    extra.partial_vacuums = st.partial_vacuums;
    extra.group_commits = st.group_commits;
    (void)pthread_mutex_lock(&s->park_mu);
    extra.updates_parked = s->parked;
    (void)pthread_mutex_unlock(&s->park_mu);
    extra.cumulative_epsilon = st.cumulative_epsilon;
    extra.last_close_seconds = st.last_close_seconds;
    extra.epsilon_budget = s->cfg->epsilon_max;
    r->body = fa_metrics_render(&extra, &r->len);
    r->status = r->body != NULL ? 200 : 503;
    r->content_type = "text/plain; version=0.0.4";
}

/* --------------------------------------------------------------- dispatch */

void fa_api__dispatch(fa_server *s, struct MHD_Connection *conn, fa_api_req *q, const char *url,
                      fa_api_reply *r)
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
        fa_api__reply_fail(r, FA_ENOTFOUND, "not_found", "no such endpoint");
        break;
    }
}
