/*
 * The snapshot cache: model responses rendered once per (version, format)
 * and shared, reference-counted, by every request that downloads them. The
 * server's cache_mu guards the slots and is never held while rendering.
 */
#include "api/internal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "store/store.h"

static fa_api_blob *blob_new_take(char *data, size_t len)
{
    fa_api_blob *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    return b;
}

void fa_api__blob_unref(void *p)
{
    fa_api_blob *b = p;
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b->data);
        free(b);
    }
}

/* Renders (or finds in the cache) the body of version v in format fmt. */
int fa_api__model_blob(fa_api_blob **out, char *etag, size_t etag_cap, fa_server *s, int64_t v,
                       int fmt, fa_error *err)
{
    fa_store_model m;
    fa_params *params = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_api_blob *b = NULL;
    char *json = NULL, sha[65];
    size_t json_len = 0;
    int rc;

    *out = NULL;
    (void)pthread_mutex_lock(&s->cache_mu);
    for (int i = 0; i < FA_API_CACHE_SLOTS; i++) {
        fa_api_cache_slot *c = &s->cache[i];
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
    for (int i = 1; i < FA_API_CACHE_SLOTS; i++)
        if (s->cache[i].used < s->cache[victim].used)
            victim = i;
    fa_api__blob_unref(s->cache[victim].blob);
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
