#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/params.h"
#include "model/snapshot.h"

#define N_ITEMS 20

static const char *const NAMES[FA_TENSOR_COUNT] = {"item_embedding/embeddings",
                                                   "dense_1/kernel",
                                                   "dense_1/bias",
                                                   "dense_2/kernel",
                                                   "dense_2/bias",
                                                   "dense_3/kernel",
                                                   "dense_3/bias",
                                                   "out/kernel",
                                                   "out/bias"};

static fa_params *model(void)
{
    fa_params *p = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_params_new(&p, N_ITEMS, &err), FA_OK);
    fa_params_init_random(p, 1);
    return p;
}

static fa_snapshot_meta meta(void)
{
    fa_snapshot_meta m = {3, 2, 1.25, 1e-5, 0, {0}};
    return m;
}

static unsigned char *write_st(size_t *len, const fa_params *p)
{
    unsigned char *buf = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta m = meta();

    cr_assert_eq(fa_snapshot_safetensors(&buf, len, p, &m, &err), FA_OK, "%s", err.msg);
    return buf;
}

static uint64_t header_len(const unsigned char *buf)
{
    uint64_t n = 0;

    for (int i = 0; i < 8; i++)
        n |= (uint64_t)buf[i] << (8 * i);
    return n;
}

static json_t *header_json(const unsigned char *buf)
{
    json_error_t jerr;
    json_t *h = json_loadb((const char *)buf + 8, header_len(buf), 0, &jerr);

    cr_assert_not_null(h, "%s", jerr.text);
    return h;
}

/* New safetensors bytes with header h (taken) and the data section of buf. */
static unsigned char *rebuild(size_t *out_len, json_t *h, const unsigned char *buf, size_t len)
{
    char *js = json_dumps(h, JSON_COMPACT);
    size_t n = strlen(js), pad = (8 - (8 + n) % 8) % 8, data = len - 8 - header_len(buf);
    unsigned char *out = malloc(8 + n + pad + data);

    cr_assert_not_null(out);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((n + pad) >> (8 * i));
    memcpy(out + 8, js, n);
    memset(out + 8 + n, ' ', pad);
    memcpy(out + 8 + n + pad, buf + 8 + header_len(buf), data);
    *out_len = 8 + n + pad + data;
    free(js);
    json_decref(h);
    return out;
}

static void expect_reject(const unsigned char *buf, size_t len, int code, const char *needle)
{
    fa_params *p = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_snapshot_safetensors_parse(&p, NULL, buf, len, 0, &err), code,
                 "accepted (%s): %s", needle, err.msg);
    cr_assert_null(p);
    cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

Test(snapshot, safetensors_header_layout_and_alignment)
{
    fa_params *p = model();
    size_t len;
    unsigned char *buf = write_st(&len, p);
    uint64_t n = header_len(buf);
    json_t *h = header_json(buf), *md;
    const char *prev = NULL;
    size_t end = 0;

    cr_assert_eq((8 + n) % 8, 0u);
    cr_assert_eq(len, 8 + n + fa_params_len(p) * 4);
    cr_assert_eq(buf[8 + n - 1] == ' ' || buf[8 + n - 1] == '}', 1);
    /* __metadata__ first, then the tensors in layout order. */
    prev = strstr((const char *)buf + 8, "\"__metadata__\"");
    cr_assert_not_null(prev);
    for (int i = 0; i < FA_TENSOR_COUNT; i++) {
        char key[64];
        const char *at;
        json_t *t = json_object_get(h, NAMES[i]);
        (void)snprintf(key, sizeof(key), "\"%s\"", NAMES[i]);
        at = strstr((const char *)buf + 8, key);
        cr_assert(at != NULL && at > prev, "%s out of order", NAMES[i]);
        prev = at;
        cr_assert_str_eq(json_string_value(json_object_get(t, "dtype")), "F32");
        cr_assert_eq(
            (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0)), end);
        end = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 1));
    }
    cr_assert_eq(end, fa_params_len(p) * 4);
    md = json_object_get(h, "__metadata__");
    cr_assert_str_eq(json_string_value(json_object_get(md, "model_version")), "3");
    cr_assert_str_eq(json_string_value(json_object_get(md, "parent_version")), "2");
    cr_assert_str_eq(json_string_value(json_object_get(md, "epsilon")), "1.25");
    cr_assert_str_eq(json_string_value(json_object_get(md, "num_items")), "20");
    cr_assert_str_eq(json_string_value(json_object_get(md, "format_version")), "1");
    /* The data is the raw little-endian global vector. */
    cr_assert_eq(memcmp(buf + 8 + n, fa_params_cdata(p), 4 * fa_params_len(p)), 0);
    json_decref(h);
    free(buf);
    fa_params_free(p);
}

Test(snapshot, writes_are_deterministic_and_round_trip)
{
    fa_params *p = model(), *back = NULL;
    fa_snapshot_meta m2;
    size_t l1, l2;
    unsigned char *a = write_st(&l1, p), *b = write_st(&l2, p);
    unsigned char sa[32], sb[32];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(l1, l2);
    cr_assert_eq(memcmp(a, b, l1), 0);
    cr_assert_eq(fa_snapshot_sha256(sa, a, l1, &err), FA_OK);
    cr_assert_eq(fa_snapshot_sha256(sb, b, l2, &err), FA_OK);
    cr_assert_eq(memcmp(sa, sb, 32), 0);
    cr_assert_eq(fa_snapshot_safetensors_parse(&back, &m2, a, l1, 0, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_params_num_items(back), N_ITEMS);
    cr_assert_eq(memcmp(fa_params_cdata(back), fa_params_cdata(p), 4 * fa_params_len(p)), 0);
    cr_assert_eq(m2.version, 3);
    cr_assert_eq(m2.parent_version, 2);
    cr_assert_eq(m2.epsilon, 1.25);
    cr_assert_eq(m2.delta, 1e-5);
    fa_params_free(back);
    cr_assert_eq(fa_snapshot_safetensors_parse(&back, NULL, a, l1, N_ITEMS - 1, &err), FA_EINVAL);
    free(a);
    free(b);
    fa_params_free(p);
}

Test(snapshot, sha256_known_answer)
{
    unsigned char d[32];
    char hex[65];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_snapshot_sha256(d, "abc", 3, &err), FA_OK);
    fa_hex_encode(hex, d, 32);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(snapshot, rejects_malformed_safetensors)
{
    fa_params *p = model();
    size_t len, l2;
    unsigned char *buf = write_st(&len, p), *bad = malloc(len + 1);
    json_t *h;
    uint64_t n = header_len(buf);
    char *f32;

    cr_assert_not_null(bad);
    expect_reject(buf, len - 1, FA_EINVAL, "data section");
    expect_reject(buf, 7, FA_EINVAL, "shorter");
    memcpy(bad, buf, len);
    bad[len] = 0;
    expect_reject(bad, len + 1, FA_EINVAL, "data section");
    memset(bad, 0xff, 8);
    expect_reject(bad, len, FA_ETOOBIG, "header");
    memcpy(bad, buf, len);
    bad[0] = (unsigned char)(len & 0xff);
    bad[1] = (unsigned char)((len >> 8) & 0xff);
    bad[2] = (unsigned char)((len >> 16) & 0xff);
    expect_reject(bad, len, FA_EINVAL, "runs past the end");
    memcpy(bad, buf, len);
    f32 = strstr((char *)bad + 8, "\"F32\"");
    memcpy(f32, "\"F16\"", 5);
    expect_reject(bad, len, FA_EINVAL, "dtype other than F32");
    memcpy(bad, buf, len);
    bad[8] = '[';
    expect_reject(bad, len, FA_EINVAL, "not a JSON object");
    memcpy(bad, buf, len);
    bad[8 + n / 2] = '\x01';
    expect_reject(bad, len, FA_EINVAL, "not a valid JSON object");
    memcpy(bad, buf, len);
    {
        float nan = NAN;
        memcpy(bad + 8 + n + 4 * 5, &nan, 4);
        expect_reject(bad, len, FA_EINVAL, "non-finite");
    }
    free(bad);

    /* Header edits through jansson. */
    h = header_json(buf);
    json_array_set_new(json_object_get(json_object_get(h, "dense_2/bias"), "data_offsets"), 0,
                       json_integer(4));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "dense_2/bias has bad data_offsets");
    free(bad);

    h = header_json(buf);
    {
        /* Two tensors shifted by 4 bytes: sizes stay right but they overlap. */
        json_t *o = json_object_get(json_object_get(h, "out/bias"), "data_offsets");
        json_array_set_new(o, 0, json_integer(json_integer_value(json_array_get(o, 0)) - 4));
        json_array_set_new(o, 1, json_integer(json_integer_value(json_array_get(o, 1)) - 4));
    }
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "not contiguous");
    free(bad);

    h = header_json(buf);
    json_array_set_new(json_object_get(json_object_get(h, "dense_1/kernel"), "shape"), 1,
                       json_integer(64));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "dense_1/kernel has the wrong shape");
    free(bad);

    h = header_json(buf);
    json_object_set(h, "extra/kernel", json_object_get(h, "out/bias"));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "unknown tensor 'extra/kernel'");
    free(bad);

    h = header_json(buf);
    json_object_del(h, "dense_3/bias");
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "lacks tensor dense_3/bias");
    free(bad);

    h = header_json(buf);
    json_object_del(h, "__metadata__");
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "__metadata__");
    free(bad);

    h = header_json(buf);
    json_object_set_new(json_object_get(h, "__metadata__"), "format_version", json_string("2"));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "format_version");
    free(bad);

    h = header_json(buf);
    json_object_set_new(json_object_get(h, "__metadata__"), "epsilon", json_real(1.0));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "must be strings");
    free(bad);

    h = header_json(buf);
    json_object_set_new(json_object_get(h, "__metadata__"), "num_items", json_string("21"));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "num_items");
    free(bad);

    h = header_json(buf);
    json_object_set_new(json_object_get(h, "item_embedding/embeddings"), "shape",
                        json_pack("[i,i]", 0, 64));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "item_embedding/embeddings must be");
    free(bad);

    h = header_json(buf);
    json_object_set_new(json_object_get(h, "dense_1/bias"), "extra", json_true());
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "exactly dtype, shape and data_offsets");
    free(bad);

    /* A duplicate key (jansson would keep the last one without the check). */
    {
        const char *dup = "{\"out/bias\":1,\"out/bias\":2}";
        size_t dl = strlen(dup);
        unsigned char raw[64] = {0};
        raw[0] = (unsigned char)dl;
        memcpy(raw + 8, dup, dl);
        expect_reject(raw, 8 + dl, FA_EINVAL, "not a valid JSON object");
    }
    free(buf);
    fa_params_free(p);
}

Test(snapshot, metadata_is_checked_on_write)
{
    fa_params *p = model();
    unsigned char *buf = NULL;
    char *js = NULL;
    size_t len;
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta m = meta();

    m.parent_version = 3;
    cr_assert_eq(fa_snapshot_safetensors(&buf, &len, p, &m, &err), FA_EINVAL);
    m = meta();
    m.epsilon = NAN;
    cr_assert_eq(fa_snapshot_tfjs_json(&js, &len, p, &m, &err), FA_EINVAL);
    m = meta();
    m.version = -1;
    cr_assert_eq(fa_snapshot_tfjs_model_json(&js, &len, p, &m, &err), FA_EINVAL);
    cr_assert_null(buf);
    cr_assert_null(js);
    fa_params_free(p);
}

static void check_specs(json_t *specs, const fa_params *p)
{
    cr_assert_eq(json_array_size(specs), (size_t)FA_TENSOR_COUNT);
    for (int i = 0; i < FA_TENSOR_COUNT; i++) {
        json_t *s = json_array_get(specs, (size_t)i), *shape = json_object_get(s, "shape");
        const fa_tensor_spec *t = fa_params_tensor(p, (fa_tensor_id)i);
        cr_assert_str_eq(json_string_value(json_object_get(s, "name")), NAMES[i]);
        cr_assert_str_eq(json_string_value(json_object_get(s, "dtype")), "float32");
        cr_assert_eq(json_array_size(shape), (size_t)t->ndim);
        cr_assert_eq((size_t)json_integer_value(json_array_get(shape, 0)), t->shape[0]);
    }
}

static void check_topology(json_t *top)
{
    json_t *layers = json_object_get(json_object_get(top, "config"), "layers"), *l;
    size_t i;
    int seen = 0;

    cr_assert_str_eq(json_string_value(json_object_get(top, "class_name")), "Model");
    json_array_foreach(layers, i, l)
    {
        json_t *cfg = json_object_get(l, "config");
        const char *name = json_string_value(json_object_get(l, "name"));
        cr_assert_str_eq(name, json_string_value(json_object_get(cfg, "name")));
        cr_assert_not_null(json_object_get(l, "inbound_nodes"));
        if (strcmp(name, "item_embedding") == 0) {
            cr_assert_eq(json_integer_value(json_object_get(cfg, "input_dim")), N_ITEMS);
            seen++;
        } else if (strcmp(name, "out") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(cfg, "activation")), "linear");
            seen++;
        } else if (strcmp(name, "item_id") == 0) {
            cr_assert_str_eq(json_string_value(json_object_get(cfg, "dtype")), "int32");
            seen++;
        }
    }
    cr_assert_eq(seen, 3);
    cr_assert_eq(json_array_size(layers), 9u);
}

Test(snapshot, tfjs_single_response_form)
{
    fa_params *p = model();
    char *a = NULL, *b = NULL;
    size_t la, lb, wl;
    unsigned char *w = NULL, *decoded;
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta m = meta();
    json_t *root, *fed;
    json_error_t jerr;
    const char *b64;
    int n;

    cr_assert_eq(fa_snapshot_tfjs_json(&a, &la, p, &m, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_snapshot_tfjs_json(&b, &lb, p, &m, &err), FA_OK);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(a, b, la), 0);
    cr_assert_eq(strlen(a), la);
    root = json_loads(a, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(root, "format")), "layers-model");
    cr_assert(json_is_null(json_object_get(root, "convertedBy")));
    check_topology(json_object_get(root, "modelTopology"));
    check_specs(json_object_get(root, "weightSpecs"), p);
    fed = json_object_get(root, "fedagg");
    cr_assert_eq(json_integer_value(json_object_get(fed, "version")), 3);
    cr_assert_eq(json_integer_value(json_object_get(fed, "parentVersion")), 2);
    cr_assert_eq(json_integer_value(json_object_get(fed, "numItems")), N_ITEMS);
    cr_assert_float_eq(json_real_value(json_object_get(fed, "epsilon")), 1.25, 0);

    cr_assert_eq(fa_snapshot_weights(&w, &wl, p, &err), FA_OK);
    cr_assert_eq(wl, fa_params_len(p) * 4);
    b64 = json_string_value(json_object_get(root, "weightData"));
    decoded = malloc(strlen(b64));
    cr_assert_not_null(decoded);
    n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)strlen(b64));
    /* EVP_DecodeBlock counts base64 padding as zero bytes. */
    cr_assert_geq((size_t)n, wl);
    cr_assert_eq(memcmp(decoded, w, wl), 0);
    {
        unsigned char sha[32];
        char hex[65];
        cr_assert_eq(fa_snapshot_sha256(sha, w, wl, &err), FA_OK);
        fa_hex_encode(hex, sha, 32);
        cr_assert_str_eq(json_string_value(json_object_get(fed, "weightsSha256")), hex);
    }
    free(decoded);
    free(w);
    json_decref(root);
    free(a);
    free(b);
    fa_params_free(p);
}

Test(snapshot, tfjs_file_form)
{
    fa_params *p = model();
    char *a = NULL;
    size_t la;
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta m = FA_SNAPSHOT_META_INIT;
    json_t *root, *group;
    json_error_t jerr;

    cr_assert_eq(fa_snapshot_tfjs_model_json(&a, &la, p, &m, &err), FA_OK, "%s", err.msg);
    root = json_loads(a, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    check_topology(json_object_get(root, "modelTopology"));
    group = json_array_get(json_object_get(root, "weightsManifest"), 0);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(group, "paths"), 0)),
                     FA_SNAPSHOT_TFJS_WEIGHTS);
    check_specs(json_object_get(group, "weights"), p);
    cr_assert(json_is_null(json_object_get(json_object_get(root, "fedagg"), "parentVersion")));
    json_decref(root);
    free(a);
    fa_params_free(p);
}

/* A released snapshot names its ledger entry: seq and the hash before it, both or neither. */
Test(snapshot, a_release_names_its_ledger_entry)
{
    fa_params *p = model(), *back = NULL;
    fa_snapshot_meta m = meta(), got;
    fa_error err = FA_ERROR_INIT;
    unsigned char *buf = NULL, *bad;
    size_t len = 0, l2 = 0;
    json_t *h;

    m.ledger_seq = 17;
    for (int i = 0; i < 32; i++)
        m.ledger_prev_hash[i] = (unsigned char)(0xa0 + i);
    cr_assert_eq(fa_snapshot_safetensors(&buf, &len, p, &m, &err), FA_OK, "%s", err.msg);
    h = header_json(buf);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(h, "__metadata__"), "ledger_seq")), "17");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(h, "__metadata__"), "ledger_prev_hash")),
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    json_decref(h);
    cr_assert_eq(fa_snapshot_safetensors_parse(&back, &got, buf, len, 0, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(got.ledger_seq, 17);
    cr_assert_eq(memcmp(got.ledger_prev_hash, m.ledger_prev_hash, 32), 0);
    fa_params_free(back);

    h = header_json(buf);
    json_object_del(json_object_get(h, "__metadata__"), "ledger_prev_hash");
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "come together");
    free(bad);
    h = header_json(buf);
    json_object_set_new(json_object_get(h, "__metadata__"), "ledger_seq", json_string("0"));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "ledger_seq");
    free(bad);
    h = header_json(buf);
    json_object_set_new(json_object_get(h, "__metadata__"), "ledger_prev_hash",
                        json_string("A0A1"));
    bad = rebuild(&l2, h, buf, len);
    expect_reject(bad, l2, FA_EINVAL, "ledger_prev_hash");
    free(bad);
    free(buf);
    fa_params_free(p);
}

/* An ALS model keeps its kind and factor count through both formats. */
Test(snapshot, als_round_trips_and_names_its_model)
{
    fa_params *p = NULL, *back = NULL;
    fa_snapshot_meta m = FA_SNAPSHOT_META_INIT, m2;
    unsigned char *buf = NULL;
    char *js = NULL, *hit;
    size_t len = 0, jl = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_params_new_model(&p, FA_MODEL_ALS, N_ITEMS, 6, &err), FA_OK);
    fa_params_init_random(p, 5);
    fa_params_data(p)[fa_params_len(p) - 1] = 0.25f;
    m.version = 1;
    m.parent_version = 0;
    cr_assert_eq(fa_snapshot_safetensors(&buf, &len, p, &m, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_snapshot_safetensors_parse(&back, &m2, buf, len, 0, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_params_kind(back), FA_MODEL_ALS);
    cr_assert_eq(fa_params_factors(back), 6u);
    cr_assert_eq(fa_params_len(back), fa_params_len(p));
    cr_assert_eq(memcmp(fa_params_cdata(back), fa_params_cdata(p), 4 * fa_params_len(p)), 0);
    fa_params_free(back);
    /* Metadata that names another model than the tensors hold is refused. */
    hit = NULL;
    for (size_t i = 0; i + 13 <= len && hit == NULL; i++)
        if (memcmp(buf + i, "\"model\":\"als\"", 13) == 0)
            hit = (char *)buf + i;
    cr_assert_not_null(hit);
    memcpy(hit, "\"model\":\"ncf\"", 13);
    cr_assert_eq(fa_snapshot_safetensors_parse(&back, NULL, buf, len, 0, &err), FA_EINVAL);
    cr_assert_null(back);
    cr_assert_eq(fa_snapshot_tfjs_json(&js, &jl, p, &m, &err), FA_OK, "%s", err.msg);
    cr_assert_not_null(strstr(js, "\"name\":\"item_factors/embeddings\""));
    cr_assert_not_null(strstr(js, "\"model\":\"als\""));
    cr_assert_not_null(strstr(js, "\"factors\":6"));
    free(js);
    free(buf);
    fa_params_free(p);
}
