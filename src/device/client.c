#include "device/client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/params.h"
#include "model/snapshot.h"
#include "model/update.h"
#include "core/base64.h"
#include "privacy/crypto.h"

/* Bodies above this many bytes wait for the server's 100 Continue. */
#define EXPECT_THRESHOLD (1024 * 1024)

#define MAX_RESPONSE_BYTES (256u * 1024 * 1024)

struct fa_device_client {
    CURL *curl;
    char base[256];
    int json_updates; /* post updates in the JSON form (default: binary) */
    char *bearer;     /* "Authorization: Bearer <token>", or NULL */
    char *ca_file;    /* PEM CA bundle that verifies an HTTPS server, or NULL: the system's */
};

struct sink {
    char *p;
    size_t len, cap;
    int overflow;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;

    if (s->len + n + 1 > MAX_RESPONSE_BYTES) {
        s->overflow = 1;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap == 0 ? 4096 : s->cap;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (p == NULL)
            return 0;
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, n);
    s->len += n;
    s->p[s->len] = '\0';
    return n;
}

int fa_device_global_init(fa_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return fa_fail(err, FA_EINTERNAL, "libcurl failed to initialise");
    return FA_OK;
}

int fa_device_client_new(fa_device_client **out, const char *base_url, fa_error *err)
{
    fa_device_client *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    if (strlen(base_url) >= sizeof(c->base)) {
        free(c);
        return fa_fail(err, FA_EINVAL, "server URL is too long");
    }
    memcpy(c->base, base_url, strlen(base_url) + 1);
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        return fa_fail(err, FA_ENOMEM, "cannot create an HTTP client");
    }
    *out = c;
    return FA_OK;
}

void fa_device_client_free(fa_device_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c->bearer);
    free(c->ca_file);
    free(c);
}

int fa_device_http(long *status_out, char **resp_out, size_t *resp_len_out, fa_device_client *c,
                   const char *method, const char *path, const char *content_type, const void *body,
                   size_t body_len, const char *extra_header, fa_error *err)
{
    char url[1024], ct[128];
    struct curl_slist *headers = NULL;
    struct sink sink = {NULL, 0, 0, 0};
    CURLcode cc;
    int rc = FA_OK;

    *status_out = 0;
    if (resp_out != NULL)
        *resp_out = NULL;
    (void)snprintf(url, sizeof(url), "%s%s", c->base, path);
    curl_easy_reset(c->curl);
    (void)curl_easy_setopt(c->curl, CURLOPT_URL, url);
    (void)curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    (void)curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    (void)curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);
    (void)curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 60L);
    (void)curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    /* HTTPS: the server certificate is always verified (name and chain). */
    (void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    (void)curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
    (void)curl_easy_setopt(c->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file != NULL)
        (void)curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
    if (content_type != NULL) {
        (void)snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ct);
    }
    /* A large body is announced with Expect: 100-continue, so a server that
     * refuses it from its headers (413 from Content-Length) answers before
     * the body is sent; otherwise the early answer can be lost to the
     * connection reset of a body sent into a closed socket. Smaller bodies
     * go at once (no round trip). */
    headers = curl_slist_append(
        headers, body != NULL && body_len > EXPECT_THRESHOLD ? "Expect: 100-continue" : "Expect:");
    if (c->bearer != NULL)
        headers = curl_slist_append(headers, c->bearer);
    /* extra_header: one or more header lines, separated by '\n'. */
    for (const char *h = extra_header; h != NULL && *h != '\0';) {
        size_t n = strcspn(h, "\n");
        char line[512];
        if (n > 0 && n < sizeof(line)) {
            memcpy(line, h, n);
            line[n] = '\0';
            headers = curl_slist_append(headers, line);
        }
        h += n + (h[n] == '\n');
    }
    (void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    if (body != NULL) {
        (void)curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        (void)curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    cc = curl_easy_perform(c->curl);
    if (cc != CURLE_OK && !(cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR)) {
        rc = fa_fail(err, FA_EUNAVAIL, "%s %s: %s", method, path, curl_easy_strerror(cc));
        goto cleanup;
    }
    (void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status_out);
    if (cc != CURLE_OK && *status_out == 0) {
        rc = fa_fail(err, FA_EUNAVAIL, "%s %s: %s", method, path, curl_easy_strerror(cc));
        goto cleanup;
    }
    if (resp_out != NULL) {
        *resp_out = sink.p != NULL ? sink.p : strdup("");
        sink.p = NULL;
    }
    if (resp_len_out != NULL)
        *resp_len_out = sink.len;
cleanup:
    curl_slist_free_all(headers);
    free(sink.p);
    return rc;
}

/* Turns a non-2xx JSON error answer into an fa_error. */
static int http_error(long status, const char *body, const char *what, fa_error *err)
{
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    fa_code code = status == 409   ? FA_ECONFLICT
                   : status == 404 ? FA_ENOTFOUND
                   : status == 503 ? FA_EUNAVAIL
                   : status == 413 ? FA_ETOOBIG
                                   : FA_EINVAL;
    int rc = fa_fail(err, code, "%s: HTTP %ld: %s", what, status, msg != NULL ? msg : "no detail");
    json_decref(j);
    return rc;
}

int fa_device_fetch_key(fa_device_key *out, fa_device_client *c, fa_error *err)
{
    char *body = NULL;
    long status = 0;
    json_t *j = NULL;
    size_t len = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_device_http(&status, &body, NULL, c, "GET", "/api/federated/key", NULL, NULL, 0,
                             NULL, err)) < 0)
        return rc;
    if (status != 200) {
        rc = http_error(status, body, "fetching the server key", err);
        goto cleanup;
    }
    j = json_loads(body, 0, NULL);
    const char *pk = json_string_value(json_object_get(j, "publicKey"));
    const char *kid = json_string_value(json_object_get(j, "keyId"));
    if (pk == NULL || kid == NULL || strlen(kid) >= sizeof(out->key_id) ||
        fa_base64_decode(out->pk, sizeof(out->pk), &len, pk, strlen(pk)) < 0 || len != 32) {
        rc = fa_fail(err, FA_EINVAL, "server key answer is malformed");
        goto cleanup;
    }
    memcpy(out->key_id, kid, strlen(kid) + 1);
cleanup:
    json_decref(j);
    free(body);
    return rc;
}

int fa_device_checkin(fa_device_round *out, fa_device_client *c, const char *device_id,
                      fa_error *err)
{
    char *body = NULL, *req = NULL;
    long status = 0;
    json_t *j = NULL, *rq = json_object();
    int rc;

    memset(out, 0, sizeof(*out));
    if (device_id != NULL)
        json_object_set_new(rq, "deviceId", json_string(device_id));
    req = json_dumps(rq, JSON_COMPACT);
    json_decref(rq);
    if (req == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    if ((rc = fa_device_http(&status, &body, NULL, c, "POST", "/api/federated/checkin",
                             "application/json", req, strlen(req), NULL, err)) < 0)
        goto cleanup;
    if (status != 200) {
        rc = http_error(status, body, "check-in", err);
        goto cleanup;
    }
    j = json_loads(body, 0, NULL);
    out->selected = json_is_true(json_object_get(j, "selected"));
    out->round_id = json_integer_value(json_object_get(j, "roundId"));
    out->model_version = json_integer_value(json_object_get(j, "modelVersion"));
    out->min_cohort = json_integer_value(json_object_get(j, "minCohort"));
    const char *tok = json_string_value(json_object_get(j, "roundToken"));
    if (out->selected && (tok == NULL || strlen(tok) >= sizeof(out->token))) {
        rc = fa_fail(err, FA_EINVAL, "check-in answer has no usable token");
        goto cleanup;
    }
    if (tok != NULL)
        memcpy(out->token, tok, strlen(tok) + 1);
cleanup:
    json_decref(j);
    free(body);
    free(req);
    return rc;
}

int fa_device_fetch_model(fa_params **out, fa_device_client *c, int64_t version, fa_error *err)
{
    char path[96], *body = NULL;
    size_t len = 0;
    long status = 0;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    int rc;

    *out = NULL;
    (void)snprintf(path, sizeof(path), "/api/federated/model/%lld.safetensors", (long long)version);
    if ((rc = fa_device_http(&status, &body, &len, c, "GET", path, NULL, NULL, 0, NULL, err)) < 0)
        return rc;
    if (status != 200)
        rc = http_error(status, body, "model download", err);
    else
        rc = fa_snapshot_safetensors_parse(out, &meta, (const unsigned char *)body, len,
                                           FA_PARAMS_MAX_ITEMS, err);
    free(body);
    return rc;
}

int fa_device_update_box(unsigned char **box_out, size_t *len_out, const fa_device_key *key,
                         int64_t model_version, int64_t num_samples, const float *delta, size_t dim,
                         fa_error *err)
{
    size_t plain_len = FA_UPDATE_HEADER_BYTES + 4 * dim;
    size_t box_len = plain_len + FA_CRYPTO_SEAL_OVERHEAD;
    unsigned char *plain = malloc(plain_len), *box = malloc(box_len);
    int rc = FA_OK;

    *box_out = NULL;
    *len_out = 0;
    if (plain == NULL || box == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory sealing an update");
        goto cleanup;
    }
    fa_update_encode(plain, (uint32_t)model_version, (uint32_t)num_samples, delta, dim);
    if ((rc = fa_crypto_box_seal(box, box_len, key->pk, plain, plain_len, err)) < 0)
        goto cleanup;
    *box_out = box;
    *len_out = box_len;
    box = NULL;
cleanup:
    /* The plaintext is the device's update: wipe it before the allocator
     * can hand the bytes to anyone else. */
    if (plain != NULL)
        fa_crypto_wipe(plain, plain_len);
    free(plain);
    free(box);
    return rc;
}

int fa_device_update_headers(char *out, size_t cap, const fa_device_key *key, const char *token,
                             int64_t model_version, int64_t num_samples)
{
    int n = snprintf(out, cap,
                     "Fedagg-Model-Version: %lld\nFedagg-Round-Token: %s\nFedagg-Key-Id: %s\n"
                     "Fedagg-Num-Samples: %lld",
                     (long long)model_version, token, key->key_id, (long long)num_samples);
    return n > 0 && (size_t)n < cap ? FA_OK : FA_EINVAL;
}

int fa_device_update_body(char **body_out, size_t *len_out, const fa_device_key *key,
                          const char *token, int64_t model_version, int64_t num_samples,
                          const float *delta, size_t dim, fa_error *err)
{
    unsigned char *box = NULL;
    size_t box_len = 0, b64_cap;
    char *b64 = NULL, *body = NULL;
    int rc = FA_OK;

    *body_out = NULL;
    if ((rc = fa_device_update_box(&box, &box_len, key, model_version, num_samples, delta, dim,
                                   err)) < 0)
        return rc;
    b64_cap = FA_BASE64_LEN(box_len);
    if ((b64 = malloc(b64_cap)) == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory sealing an update");
        goto cleanup;
    }
    fa_base64_encode(b64, b64_cap, box, box_len);
    size_t cap = strlen(b64) + strlen(token) + strlen(key->key_id) + 200;
    body = malloc(cap);
    if (body == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory sealing an update");
        goto cleanup;
    }
    /* Built by hand: the base64 payload is large and needs no escaping,
     * and the token and key id are base64url/hex from the server. */
    int n = snprintf(body, cap,
                     "{\"modelVersion\":%lld,\"roundToken\":\"%s\",\"keyId\":\"%s\","
                     "\"numSamples\":%lld,\"encryptedGradients\":\"%s\"}",
                     (long long)model_version, token, key->key_id, (long long)num_samples, b64);
    *len_out = (size_t)n;
    *body_out = body;
    body = NULL;
cleanup:
    free(box);
    free(b64);
    free(body);
    return rc;
}

int fa_device_post_update(long *status_out, char *receipt, char *code_out, size_t cap,
                          fa_device_client *c, const fa_device_key *key, const char *token,
                          int64_t model_version, int64_t num_samples, const float *delta,
                          size_t dim, fa_error *err)
{
    char *body = NULL, *resp = NULL, headers[512];
    unsigned char *box = NULL;
    size_t len = 0;
    json_t *j = NULL;
    int rc;

    *status_out = 0;
    if (receipt != NULL)
        receipt[0] = '\0';
    if (code_out != NULL)
        code_out[0] = '\0';
    if (c->json_updates) {
        if ((rc = fa_device_update_body(&body, &len, key, token, model_version, num_samples, delta,
                                        dim, err)) < 0)
            return rc;
        rc = fa_device_http(status_out, &resp, NULL, c, "POST", "/api/federated/update",
                            "application/json", body, len, NULL, err);
    } else {
        if (fa_device_update_headers(headers, sizeof(headers), key, token, model_version,
                                     num_samples) < 0)
            return fa_fail(err, FA_EINVAL, "round token of %zu bytes is too long", strlen(token));
        if ((rc = fa_device_update_box(&box, &len, key, model_version, num_samples, delta, dim,
                                       err)) < 0)
            return rc;
        rc = fa_device_http(status_out, &resp, NULL, c, "POST", "/api/federated/update",
                            "application/octet-stream", box, len, headers, err);
    }
    if (rc < 0)
        goto cleanup;
    j = json_loads(resp, 0, NULL);
    if (*status_out == 202 && receipt != NULL) {
        const char *r = json_string_value(json_object_get(j, "receipt"));
        (void)snprintf(receipt, cap, "%s", r != NULL ? r : "");
    } else if (code_out != NULL) {
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        (void)snprintf(code_out, cap, "%s", code != NULL ? code : "");
    }
cleanup:
    json_decref(j);
    free(resp);
    free(body);
    free(box);
    return rc;
}

void fa_device_client_use_json(fa_device_client *c, int json_updates)
{
    c->json_updates = json_updates != 0;
}

int fa_device_client_set_token(fa_device_client *c, const char *token, fa_error *err)
{
    char *line = NULL;

    if (token != NULL) {
        size_t n = strlen("Authorization: Bearer ") + strlen(token) + 1;
        if (strpbrk(token, "\r\n") != NULL)
            return fa_fail(err, FA_EINVAL, "a device token cannot hold a line break");
        if ((line = malloc(n)) == NULL)
            return fa_fail(err, FA_ENOMEM, "out of memory");
        (void)snprintf(line, n, "Authorization: Bearer %s", token);
    }
    free(c->bearer);
    c->bearer = line;
    return FA_OK;
}

int fa_device_client_set_ca(fa_device_client *c, const char *ca_file, fa_error *err)
{
    char *copy = NULL;

    if (ca_file != NULL && (copy = strdup(ca_file)) == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    free(c->ca_file);
    c->ca_file = copy;
    return FA_OK;
}

int fa_device_mint_token(char **out, const fa_crypto_sign_key *issuer, const char *kid,
                         const char *iss, const char *aud, const char *sub, int64_t exp,
                         fa_error *err)
{
    json_t *h = json_pack("{s:s,s:s,s:s}", "alg", "EdDSA", "typ", "JWT", "kid", kid);
    json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", iss, "aud", aud, "sub", sub, "exp",
                          (json_int_t)exp, "iat", (json_int_t)(exp - 3600));
    char *ht = h != NULL ? json_dumps(h, JSON_COMPACT) : NULL;
    char *ct = c != NULL ? json_dumps(c, JSON_COMPACT) : NULL;
    char *tok = NULL;
    unsigned char sig[FA_CRYPTO_SIGN_BYTES];
    int rc = FA_OK;

    *out = NULL;
    if (ht == NULL || ct == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory minting a token");
        goto cleanup;
    }
    size_t hl = FA_BASE64_LEN(strlen(ht)), cl = FA_BASE64_LEN(strlen(ct)),
           cap = hl + cl + FA_BASE64_LEN(sizeof(sig)) + 2;
    if ((tok = malloc(cap)) == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory minting a token");
        goto cleanup;
    }
    fa_base64url_encode(tok, hl, ht, strlen(ht));
    size_t n = strlen(tok);
    tok[n++] = '.';
    fa_base64url_encode(tok + n, cl, ct, strlen(ct));
    n += strlen(tok + n);
    fa_crypto_sign(sig, issuer, tok, n); /* JWS signing input: header.claims (RFC 7515) */
    tok[n++] = '.';
    fa_base64url_encode(tok + n, cap - n, sig, sizeof(sig));
    *out = tok;
    tok = NULL;
cleanup:
    free(tok);
    free(ht);
    free(ct);
    json_decref(h);
    json_decref(c);
    return rc;
}
