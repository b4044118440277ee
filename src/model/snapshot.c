#include "model/snapshot.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/base64.h"
#include "core/digest.h"
#include "core/util.h"
#include "model/internal.h"
#include "model/params.h"

#define FORMAT_NAME "fedagg-ncf"
#define NUM_CHARS   32 /* "%.17g" of a double or a decimal int64, with room */
#define NAME_CHARS  64 /* longest tensor name quoted in an error */

/* ---- shared pieces ------------------------------------------------------------------------- */

int fa_snapshot__check_meta(const fa_snapshot_meta *m, fa_error *err)
{
    if (m->version < 0)
        return fa_fail(err, FA_EINVAL, "model version %" PRId64 " is negative", m->version);
    if (m->parent_version < -1 || (m->parent_version >= 0 && m->parent_version >= m->version))
        return fa_fail(err, FA_EINVAL, "parent version %" PRId64 " is not below version %" PRId64,
                       m->parent_version, m->version);
    if (!isfinite(m->epsilon) || m->epsilon < 0.0)
        return fa_fail(err, FA_EINVAL, "epsilon must be a finite number >= 0");
    if (!isfinite(m->delta) || m->delta < 0.0 || m->delta >= 1.0)
        return fa_fail(err, FA_EINVAL, "delta must be in [0, 1)");
    return FA_OK;
}

int fa_snapshot__put(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

int fa_snapshot__append(json_t *arr, json_t *value)
{
    return json_array_append_new(arr, value) == 0 ? 0 : -1;
}

json_t *fa_snapshot__shape_json(const fa_tensor_spec *s)
{
    json_t *a = json_array();
    int bad = 0;

    for (int d = 0; d < s->ndim; d++)
        bad |= fa_snapshot__append(a, json_integer((json_int_t)s->shape[d]));
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static void write_floats(unsigned char *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fa_bytes_put_f32(dst + 4 * i, src[i]);
}

int fa_snapshot_sha256(unsigned char out[FA_SNAPSHOT_SHA256_BYTES], const void *data, size_t len,
                       fa_error *err)
{
    (void)err;
    _Static_assert(FA_SNAPSHOT_SHA256_BYTES == FA_SHA256_BYTES, "snapshot digests are SHA-256");
    fa_sha256(out, data, len);
    return FA_OK;
}

int fa_snapshot_weights(unsigned char **out, size_t *len_out, const fa_params *p, fa_error *err)
{
    size_t n = fa_params_len(p);
    unsigned char *buf;

    *out = NULL;
    *len_out = 0;
    buf = malloc(n * 4);
    if (buf == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the weight data");
    write_floats(buf, fa_params_cdata(p), n);
    *out = buf;
    *len_out = n * 4;
    return FA_OK;
}

/* ---- safetensors writer -------------------------------------------------------------------- */

static json_t *st_metadata(const fa_params *p, const fa_snapshot_meta *m)
{
    char num[NUM_CHARS];
    json_t *md = json_object();
    int bad = 0;

    /* Key order is insertion order: jansson keeps it when dumping. */
    bad |= fa_snapshot__put(md, "format", json_string(FORMAT_NAME));
    (void)snprintf(num, sizeof(num), "%d", FA_SNAPSHOT_FORMAT_VERSION);
    bad |= fa_snapshot__put(md, "format_version", json_string(num));
    (void)snprintf(num, sizeof(num), "%" PRId64, m->version);
    bad |= fa_snapshot__put(md, "model_version", json_string(num));
    if (m->parent_version < 0)
        (void)snprintf(num, sizeof(num), "none");
    else
        (void)snprintf(num, sizeof(num), "%" PRId64, m->parent_version);
    bad |= fa_snapshot__put(md, "parent_version", json_string(num));
    (void)snprintf(num, sizeof(num), "%.17g", m->epsilon);
    bad |= fa_snapshot__put(md, "epsilon", json_string(num));
    (void)snprintf(num, sizeof(num), "%.17g", m->delta);
    bad |= fa_snapshot__put(md, "delta", json_string(num));
    (void)snprintf(num, sizeof(num), "%zu", fa_params_num_items(p));
    bad |= fa_snapshot__put(md, "num_items", json_string(num));
    /* NCF snapshots predate the key and stay byte-identical without it. */
    if (fa_params_kind(p) != FA_MODEL_NCF)
        bad |= fa_snapshot__put(md, "model", json_string(fa_model_kind_name(fa_params_kind(p))));
    if (m->ledger_seq > 0) {
        char hex[65];
        (void)snprintf(num, sizeof(num), "%" PRId64, m->ledger_seq);
        bad |= fa_snapshot__put(md, "ledger_seq", json_string(num));
        fa_hex_encode(hex, m->ledger_prev_hash, 32);
        bad |= fa_snapshot__put(md, "ledger_prev_hash", json_string(hex));
    }
    if (bad) {
        json_decref(md);
        return NULL;
    }
    return md;
}

int fa_snapshot_safetensors(unsigned char **out, size_t *len_out, const fa_params *p,
                            const fa_snapshot_meta *meta, fa_error *err)
{
    json_t *hdr = NULL;
    char *js = NULL;
    unsigned char *buf = NULL;
    size_t js_len, hdr_len, data_len = fa_params_len(p) * 4;
    int rc = FA_OK, bad;

    *out = NULL;
    *len_out = 0;
    if ((rc = fa_snapshot__check_meta(meta, err)) < 0)
        return rc;
    hdr = json_object();
    bad = fa_snapshot__put(hdr, "__metadata__", st_metadata(p, meta));
    for (int i = 0; i < fa_params_num_tensors(p); i++) {
        const fa_tensor_spec *s = fa_params_tensor(p, (fa_tensor_id)i);
        json_t *t = json_object(), *offs = json_array();
        bad |= fa_snapshot__put(t, "dtype", json_string("F32"));
        bad |= fa_snapshot__put(t, "shape", fa_snapshot__shape_json(s));
        bad |= fa_snapshot__append(offs, json_integer((json_int_t)(s->offset * 4)));
        bad |= fa_snapshot__append(offs, json_integer((json_int_t)((s->offset + s->count) * 4)));
        bad |= fa_snapshot__put(t, "data_offsets", offs);
        bad |= fa_snapshot__put(hdr, s->name, t);
    }
    if (bad || (js = json_dumps(hdr, FA_SNAPSHOT__DUMP_FLAGS)) == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory building the safetensors header");
        goto cleanup;
    }
    js_len = strlen(js);
    /* Pad with spaces so that the data section starts 8-byte aligned. */
    hdr_len = js_len + (8 - (8 + js_len) % 8) % 8;
    buf = malloc(8 + hdr_len + data_len);
    if (buf == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the safetensors snapshot");
        goto cleanup;
    }
    fa_bytes_put_u64(buf, (uint64_t)hdr_len);
    memcpy(buf + 8, js, js_len);
    memset(buf + 8 + js_len, ' ', hdr_len - js_len);
    write_floats(buf + 8 + hdr_len, fa_params_cdata(p), fa_params_len(p));
    *out = buf;
    *len_out = 8 + hdr_len + data_len;
    buf = NULL;
cleanup:
    free(buf);
    free(js);
    json_decref(hdr);
    return rc;
}

/* ---- safetensors reader -------------------------------------------------------------------- */

/* Copies s for an error message: printable ASCII only, at most NAME_CHARS characters. */
static const char *quoted(char out[NAME_CHARS + 4], const char *s)
{
    size_t i = 0;

    for (; s[i] != '\0' && i < NAME_CHARS; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s[i] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* A non-negative JSON integer. */
static int get_size(size_t *out, const json_t *v)
{
    json_int_t x;

    if (!json_is_integer(v))
        return -1;
    x = json_integer_value(v);
    if (x < 0 || (unsigned long long)x > SIZE_MAX / 8)
        return -1;
    *out = (size_t)x;
    return 0;
}

static const char *meta_string(const json_t *md, const char *key)
{
    const json_t *v = json_object_get(md, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_metadata(fa_snapshot_meta *m, const json_t *md, size_t num_items,
                          fa_model_kind kind, fa_error *err)
{
    const char *key, *s;
    const json_t *v;
    int64_t i64;

    if (!json_is_object(md))
        return fa_fail(err, FA_EINVAL, "safetensors header has no __metadata__ object");
    json_object_foreach((json_t *)md, key, v)
    {
        if (!json_is_string(v))
            return fa_fail(err, FA_EINVAL, "safetensors metadata values must be strings");
    }
    if ((s = meta_string(md, "format")) == NULL || strcmp(s, FORMAT_NAME) != 0)
        return fa_fail(err, FA_EINVAL, "safetensors metadata format is not %s", FORMAT_NAME);
    if ((s = meta_string(md, "format_version")) == NULL || fa_parse_i64(&i64, s) < 0 ||
        i64 != FA_SNAPSHOT_FORMAT_VERSION)
        return fa_fail(err, FA_EINVAL, "snapshot format_version is not %d",
                       FA_SNAPSHOT_FORMAT_VERSION);
    if ((s = meta_string(md, "model_version")) == NULL || fa_parse_i64(&m->version, s) < 0 ||
        m->version < 0)
        return fa_fail(err, FA_EINVAL, "snapshot model_version is missing or not a version");
    if ((s = meta_string(md, "parent_version")) == NULL)
        return fa_fail(err, FA_EINVAL, "snapshot parent_version is missing");
    if (strcmp(s, "none") == 0)
        m->parent_version = -1;
    else if (fa_parse_i64(&m->parent_version, s) < 0 || m->parent_version < 0)
        return fa_fail(err, FA_EINVAL, "snapshot parent_version is not a version");
    if ((s = meta_string(md, "epsilon")) == NULL || fa_parse_double(&m->epsilon, s) < 0)
        return fa_fail(err, FA_EINVAL, "snapshot epsilon is missing or not a number");
    if ((s = meta_string(md, "delta")) == NULL || fa_parse_double(&m->delta, s) < 0)
        return fa_fail(err, FA_EINVAL, "snapshot delta is missing or not a number");
    if ((s = meta_string(md, "num_items")) == NULL || fa_parse_i64(&i64, s) < 0 ||
        i64 != (int64_t)num_items)
        return fa_fail(err, FA_EINVAL, "snapshot num_items does not match the embedding (%zu)",
                       num_items);
    s = meta_string(md, "model");
    if (s == NULL ? kind != FA_MODEL_NCF : strcmp(s, fa_model_kind_name(kind)) != 0)
        return fa_fail(err, FA_EINVAL, "snapshot model does not match its tensors (%s)",
                       fa_model_kind_name(kind));
    /* The release entry: both keys or neither. */
    m->ledger_seq = 0;
    memset(m->ledger_prev_hash, 0, sizeof(m->ledger_prev_hash));
    s = meta_string(md, "ledger_seq");
    if ((s == NULL) != (meta_string(md, "ledger_prev_hash") == NULL))
        return fa_fail(err, FA_EINVAL, "snapshot ledger_seq and ledger_prev_hash come together");
    if (s != NULL) {
        const char *h = meta_string(md, "ledger_prev_hash");
        if (fa_parse_i64(&m->ledger_seq, s) < 0 || m->ledger_seq < 1)
            return fa_fail(err, FA_EINVAL, "snapshot ledger_seq is not a sequence number");
        if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64 ||
            fa_hex_decode(m->ledger_prev_hash, 32, h) < 0)
            return fa_fail(err, FA_EINVAL, "snapshot ledger_prev_hash is not 64 hex digits");
    }
    return fa_snapshot__check_meta(m, err);
}

/* Checks one tensor entry against its spec and returns its begin offset (bytes). */
static int parse_entry(size_t *begin_out, const json_t *t, const fa_tensor_spec *s, fa_error *err)
{
    const json_t *dtype = json_object_get(t, "dtype");
    const json_t *shape = json_object_get(t, "shape");
    const json_t *offs = json_object_get(t, "data_offsets");
    size_t b, e, dim;

    if (!json_is_object(t) || json_object_size(t) != 3 || dtype == NULL || shape == NULL ||
        offs == NULL)
        return fa_fail(err, FA_EINVAL,
                       "safetensors tensor %s must have exactly dtype, shape and data_offsets",
                       s->name);
    if (!json_is_string(dtype) || strcmp(json_string_value(dtype), "F32") != 0)
        return fa_fail(err, FA_EINVAL, "safetensors tensor %s has dtype other than F32", s->name);
    if (!json_is_array(shape) || json_array_size(shape) != (size_t)s->ndim)
        return fa_fail(err, FA_EINVAL, "safetensors tensor %s must have %d dimensions", s->name,
                       s->ndim);
    for (int d = 0; d < s->ndim; d++)
        if (get_size(&dim, json_array_get(shape, (size_t)d)) < 0 || dim != s->shape[d])
            return fa_fail(err, FA_EINVAL, "safetensors tensor %s has the wrong shape", s->name);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        get_size(&b, json_array_get(offs, 0)) < 0 || get_size(&e, json_array_get(offs, 1)) < 0 ||
        e < b || e - b != s->count * 4)
        return fa_fail(err, FA_EINVAL, "safetensors tensor %s has bad data_offsets", s->name);
    *begin_out = b;
    return FA_OK;
}

int fa_snapshot_safetensors_parse(fa_params **params_out, fa_snapshot_meta *meta_out,
                                  const unsigned char *buf, size_t len, size_t max_items,
                                  fa_error *err)
{
    fa_tensor_spec specs[FA_TENSOR_COUNT];
    fa_model_kind kind = FA_MODEL_NCF;
    int ntensors = 0;
    size_t begin[FA_TENSOR_COUNT];
    int seen[FA_TENSOR_COUNT] = {0};
    int order[FA_TENSOR_COUNT];
    char name[NAME_CHARS + 4];
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    json_t *root = NULL;
    json_error_t jerr;
    fa_params *p = NULL;
    const json_t *emb, *val;
    const char *key;
    const unsigned char *data;
    uint64_t hdr_len;
    size_t num_items, width = 0, data_len, pos;
    int rc = FA_OK;

    *params_out = NULL;
    if (max_items == 0 || max_items > FA_PARAMS_MAX_ITEMS)
        max_items = FA_PARAMS_MAX_ITEMS;
    if (len < 8)
        return fa_fail(err, FA_EINVAL, "safetensors data is shorter than its length prefix");
    hdr_len = fa_bytes_get_u64(buf);
    if (hdr_len > FA_SNAPSHOT_MAX_HEADER_BYTES)
        return fa_fail(err, FA_ETOOBIG, "safetensors header is %" PRIu64 " bytes, over %d", hdr_len,
                       FA_SNAPSHOT_MAX_HEADER_BYTES);
    if (hdr_len > len - 8)
        return fa_fail(err, FA_EINVAL, "safetensors header length %" PRIu64 " runs past the end",
                       hdr_len);
    if (hdr_len < 2 || buf[8] != '{')
        return fa_fail(err, FA_EINVAL, "safetensors header is not a JSON object");
    root = json_loadb((const char *)buf + 8, (size_t)hdr_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        rc = fa_fail(err, FA_EINVAL, "safetensors header is not a valid JSON object (byte %d)",
                     root == NULL ? jerr.position : 0);
        goto cleanup;
    }

    /* The item table fixes the kind, the item count and the width, so the whole layout: an
       NCF embedding [n, 64] or ALS item factors [n, F]. */
    emb = json_object_get(root, "item_embedding/embeddings");
    if (emb == NULL && (emb = json_object_get(root, "item_factors/embeddings")) != NULL)
        kind = FA_MODEL_ALS;
    {
        const json_t *shape = json_is_object(emb) ? json_object_get(emb, "shape") : NULL;
        size_t max_width = kind == FA_MODEL_NCF ? FA_NCF_EMBED_DIM : FA_ALS_MAX_FACTORS;
        if (!json_is_array(shape) || json_array_size(shape) != 2 ||
            get_size(&num_items, json_array_get(shape, 0)) < 0 ||
            get_size(&width, json_array_get(shape, 1)) < 0 || width < 1 || width > max_width ||
            (kind == FA_MODEL_NCF && width != FA_NCF_EMBED_DIM) || num_items < 1 ||
            num_items > max_items) {
            rc = fa_fail(err, FA_EINVAL,
                         "safetensors item_embedding/embeddings must be [n, %d] (or "
                         "item_factors/embeddings [n, F], 1 <= F <= %d) with 1 <= n <= %zu",
                         FA_NCF_EMBED_DIM, FA_ALS_MAX_FACTORS, max_items);
            goto cleanup;
        }
    }
    (void)fa_params_layout_of(specs, &ntensors, kind, num_items, width);

    json_object_foreach(root, key, val)
    {
        int idx = -1;
        if (strcmp(key, "__metadata__") == 0)
            continue;
        for (int i = 0; i < ntensors; i++)
            if (strcmp(key, specs[i].name) == 0)
                idx = i;
        if (idx < 0) {
            rc = fa_fail(err, FA_EINVAL, "safetensors header has unknown tensor '%s'",
                         quoted(name, key));
            goto cleanup;
        }
        if ((rc = parse_entry(&begin[idx], val, &specs[idx], err)) < 0)
            goto cleanup;
        seen[idx] = 1;
    }
    for (int i = 0; i < ntensors; i++) {
        if (!seen[i]) {
            rc = fa_fail(err, FA_EINVAL, "safetensors header lacks tensor %s", specs[i].name);
            goto cleanup;
        }
        order[i] = i;
    }
    if ((rc = parse_metadata(&meta, json_object_get(root, "__metadata__"), num_items, kind, err)) <
        0)
        goto cleanup;

    /* The tensors, ordered by offset, must tile the data section exactly (any order is fine). */
    for (int i = 1; i < ntensors; i++)
        for (int j = i; j > 0 && begin[order[j]] < begin[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    data_len = len - 8 - (size_t)hdr_len;
    pos = 0;
    for (int i = 0; i < ntensors; i++) {
        if (begin[order[i]] != pos) {
            rc = fa_fail(err, FA_EINVAL, "safetensors data_offsets are not contiguous at %s",
                         specs[order[i]].name);
            goto cleanup;
        }
        pos += specs[order[i]].count * 4;
    }
    if (pos != data_len) {
        rc = fa_fail(err, FA_EINVAL, "safetensors data section is %zu bytes, the tensors need %zu",
                     data_len, pos);
        goto cleanup;
    }

    if ((rc = fa_params_new_model(&p, kind, num_items, width, err)) < 0)
        goto cleanup;
    data = buf + 8 + hdr_len;
    for (int i = 0; i < ntensors; i++) {
        float *dst = fa_params_data(p) + specs[i].offset;
        const unsigned char *src = data + begin[i];
        for (size_t j = 0; j < specs[i].count; j++) {
            dst[j] = fa_bytes_get_f32(src + 4 * j);
            if (!isfinite(dst[j])) {
                rc = fa_fail(err, FA_EINVAL, "safetensors tensor %s holds a non-finite value",
                             specs[i].name);
                goto cleanup;
            }
        }
    }
    *params_out = p;
    p = NULL;
    if (meta_out != NULL)
        *meta_out = meta;
cleanup:
    fa_params_free(p);
    json_decref(root);
    return rc;
}
