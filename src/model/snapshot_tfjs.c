/*
 * The TensorFlow.js half of model/snapshot.h: the layers model (topology,
 * weight specs and weights) as model.json + shard or as one document.
 */
#include "model/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/base64.h"
#include "core/util.h"
#include "model/internal.h"
#include "model/params.h"

/* ---- TensorFlow.js ------------------------------------------------------------------------- */

/*
 * The builders below rely on jansson's *_new setters taking the value in every case (freeing it
 * on failure, also when the container is NULL), so errors are collected in `bad` and only the
 * root needs freeing.
 */

/* [[[a, 0, 0, {}], [b, 0, 0, {}]]]: one Keras-2 inbound node holding every input (b may be NULL).
 */
static json_t *inbound(const char *a, const char *b)
{
    json_t *outer = json_array(), *node = json_array();
    const char *names[2] = {a, b};
    int bad = 0;

    for (int i = 0; i < 2; i++) {
        json_t *ref;
        if (names[i] == NULL)
            continue;
        ref = json_array();
        bad |= fa_snapshot__append(ref, json_string(names[i]));
        bad |= fa_snapshot__append(ref, json_integer(0));
        bad |= fa_snapshot__append(ref, json_integer(0));
        bad |= fa_snapshot__append(ref, json_object());
        bad |= fa_snapshot__append(node, ref);
    }
    bad |= fa_snapshot__append(outer, node);
    if (bad) {
        json_decref(outer);
        return NULL;
    }
    return outer;
}

/* {"name", "class_name", "config" (with the same name), "inbound_nodes"}; takes cfg and nodes. */
static json_t *layer(const char *name, const char *class_name, json_t *cfg, json_t *nodes)
{
    json_t *l = json_object();
    int bad = 0;

    /* tfjs needs both names and they must agree (see docs/model.md). */
    bad |= fa_snapshot__put(cfg, "name", json_string(name));
    bad |= fa_snapshot__put(l, "name", json_string(name));
    bad |= fa_snapshot__put(l, "class_name", json_string(class_name));
    bad |= fa_snapshot__put(l, "config", cfg);
    bad |= fa_snapshot__put(l, "inbound_nodes", nodes);
    if (bad) {
        json_decref(l);
        return NULL;
    }
    return l;
}

static json_t *input_layer(const char *name, int width, const char *dtype)
{
    json_t *cfg = json_object(), *shape = json_array();
    int bad = 0;

    bad |= fa_snapshot__append(shape, json_null());
    bad |= fa_snapshot__append(shape, json_integer(width));
    bad |= fa_snapshot__put(cfg, "batch_input_shape", shape);
    bad |= fa_snapshot__put(cfg, "dtype", json_string(dtype));
    bad |= fa_snapshot__put(cfg, "sparse", json_false());
    if (bad) {
        json_decref(cfg);
        return NULL;
    }
    return layer(name, "InputLayer", cfg, json_array());
}

static json_t *dense_layer(const char *name, int units, const char *activation, const char *from)
{
    json_t *cfg = json_object();
    int bad = 0;

    bad |= fa_snapshot__put(cfg, "units", json_integer(units));
    bad |= fa_snapshot__put(cfg, "activation", json_string(activation));
    bad |= fa_snapshot__put(cfg, "use_bias", json_true());
    if (bad) {
        json_decref(cfg);
        return NULL;
    }
    return layer(name, "Dense", cfg, inbound(from, NULL));
}

static json_t *io_ref(const char *name)
{
    json_t *r = json_array();
    int bad = 0;

    bad |= fa_snapshot__append(r, json_string(name));
    bad |= fa_snapshot__append(r, json_integer(0));
    bad |= fa_snapshot__append(r, json_integer(0));
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* {"class_name": "Model", "config": {name, layers, input_layers, output_layers}}; takes the
 * arrays, and frees everything and returns NULL when bad is set or a put fails. */
static json_t *functional_model(const char *name, json_t *layers, json_t *ins, json_t *outs,
                                int bad)
{
    json_t *top = json_object(), *cfg = json_object();

    bad |= fa_snapshot__put(cfg, "name", json_string(name));
    bad |= fa_snapshot__put(cfg, "layers", layers);
    bad |= fa_snapshot__put(cfg, "input_layers", ins);
    bad |= fa_snapshot__put(cfg, "output_layers", outs);
    bad |= fa_snapshot__put(top, "class_name", json_string("Model"));
    bad |= fa_snapshot__put(top, "config", cfg);
    if (bad) {
        json_decref(top);
        return NULL;
    }
    return top;
}

static json_t *topology(size_t num_items)
{
    json_t *layers = json_array(), *ins = json_array(), *outs = json_array();
    json_t *emb = json_object(), *cat = json_object();
    int bad = 0;

    bad |= fa_snapshot__put(emb, "input_dim", json_integer((json_int_t)num_items));
    bad |= fa_snapshot__put(emb, "output_dim", json_integer(FA_NCF_EMBED_DIM));
    bad |= fa_snapshot__put(cat, "axis", json_integer(-1));
    bad |= fa_snapshot__append(layers, input_layer("user_vec", FA_NCF_EMBED_DIM, "float32"));
    bad |= fa_snapshot__append(layers, input_layer("item_id", 1, "int32"));
    bad |= fa_snapshot__append(layers,
                               layer("item_embedding", "Embedding", emb, inbound("item_id", NULL)));
    bad |= fa_snapshot__append(
        layers, layer("flatten", "Flatten", json_object(), inbound("item_embedding", NULL)));
    bad |= fa_snapshot__append(layers,
                               layer("concat", "Concatenate", cat, inbound("user_vec", "flatten")));
    bad |= fa_snapshot__append(layers, dense_layer("dense_1", FA_NCF_H1, "relu", "concat"));
    bad |= fa_snapshot__append(layers, dense_layer("dense_2", FA_NCF_H2, "relu", "dense_1"));
    bad |= fa_snapshot__append(layers, dense_layer("dense_3", FA_NCF_H3, "relu", "dense_2"));
    bad |= fa_snapshot__append(layers, dense_layer("out", 1, "linear", "dense_3"));
    bad |= fa_snapshot__append(ins, io_ref("user_vec"));
    bad |= fa_snapshot__append(ins, io_ref("item_id"));
    bad |= fa_snapshot__append(outs, io_ref("out"));
    return functional_model("ncf", layers, ins, outs, bad);
}

/* Embedding lookup `name` (rows x width) of the int32 input `from`, then Flatten `flat`. */
static int lookup(json_t *layers, const char *name, size_t rows, size_t width, const char *from,
                  const char *flat)
{
    json_t *emb = json_object();
    int bad = 0;

    bad |= fa_snapshot__put(emb, "input_dim", json_integer((json_int_t)rows));
    bad |= fa_snapshot__put(emb, "output_dim", json_integer((json_int_t)width));
    bad |= fa_snapshot__append(layers, input_layer(from, 1, "int32"));
    bad |= fa_snapshot__append(layers, layer(name, "Embedding", emb, inbound(from, NULL)));
    bad |= fa_snapshot__append(layers, layer(flat, "Flatten", json_object(), inbound(name, NULL)));
    return bad;
}

/*
 * ALS: item_id -> item_factors (the item's row) and factor_id -> user_gram (a row of the
 * Gram matrix); the client scores with its own user vector (docs/model.md).
 */
static json_t *topology_als(size_t num_items, size_t factors)
{
    json_t *layers = json_array(), *ins = json_array(), *outs = json_array();
    int bad = 0;

    bad |= lookup(layers, "item_factors", num_items, factors, "item_id", "item_row");
    bad |= lookup(layers, "user_gram", factors, factors, "factor_id", "gram_row");
    bad |= fa_snapshot__append(ins, io_ref("item_id"));
    bad |= fa_snapshot__append(ins, io_ref("factor_id"));
    bad |= fa_snapshot__append(outs, io_ref("item_row"));
    bad |= fa_snapshot__append(outs, io_ref("gram_row"));
    return functional_model("als", layers, ins, outs, bad);
}

static json_t *weight_specs(const fa_params *p)
{
    json_t *a = json_array();
    int bad = 0;

    for (int i = 0; i < fa_params_num_tensors(p); i++) {
        const fa_tensor_spec *s = fa_params_tensor(p, (fa_tensor_id)i);
        json_t *w = json_object();
        bad |= fa_snapshot__put(w, "name", json_string(s->name));
        bad |= fa_snapshot__put(w, "shape", fa_snapshot__shape_json(s));
        bad |= fa_snapshot__put(w, "dtype", json_string("float32"));
        bad |= fa_snapshot__append(a, w);
    }
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *fedagg_meta(const fa_params *p, const fa_snapshot_meta *m, const char *sha_hex)
{
    json_t *o = json_object();
    int bad = 0;

    bad |= fa_snapshot__put(o, "formatVersion", json_integer(FA_SNAPSHOT_FORMAT_VERSION));
    bad |= fa_snapshot__put(o, "version", json_integer((json_int_t)m->version));
    bad |= fa_snapshot__put(o, "parentVersion",
                            m->parent_version < 0 ? json_null()
                                                  : json_integer((json_int_t)m->parent_version));
    bad |= fa_snapshot__put(o, "epsilon", json_real(m->epsilon));
    bad |= fa_snapshot__put(o, "delta", json_real(m->delta));
    bad |= fa_snapshot__put(o, "numItems", json_integer((json_int_t)fa_params_num_items(p)));
    if (fa_params_kind(p) != FA_MODEL_NCF) {
        bad |= fa_snapshot__put(o, "model", json_string(fa_model_kind_name(fa_params_kind(p))));
        bad |= fa_snapshot__put(o, "factors", json_integer((json_int_t)fa_params_factors(p)));
    }
    bad |= fa_snapshot__put(o, "weightsSha256", json_string(sha_hex));
    if (m->ledger_seq > 0) {
        char hex[65];
        fa_hex_encode(hex, m->ledger_prev_hash, 32);
        bad |= fa_snapshot__put(o, "ledgerSeq", json_integer((json_int_t)m->ledger_seq));
        bad |= fa_snapshot__put(o, "ledgerPrevHash", json_string(hex));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The fields both TF.js forms share, up to and including modelTopology. */
static json_t *tfjs_head(const fa_params *p)
{
    json_t *o = json_object();
    int bad = 0;

    bad |= fa_snapshot__put(o, "format", json_string("layers-model"));
    bad |= fa_snapshot__put(o, "generatedBy", json_string("fedagg"));
    bad |= fa_snapshot__put(o, "convertedBy", json_null());
    bad |= fa_snapshot__put(o, "modelTopology",
                            fa_params_kind(p) == FA_MODEL_ALS
                                ? topology_als(fa_params_num_items(p), fa_params_factors(p))
                                : topology(fa_params_num_items(p)));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int dump(char **out, size_t *len_out, const json_t *root, fa_error *err)
{
    char *s = json_dumps(root, FA_SNAPSHOT__DUMP_FLAGS);

    if (s == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory writing the model json");
    *out = s;
    *len_out = strlen(s);
    return FA_OK;
}

/* The weight bytes and the hex SHA-256 of them. */
static int weights_and_digest(unsigned char **w, size_t *w_len, char hex[65], const fa_params *p,
                              fa_error *err)
{
    unsigned char sha[FA_SNAPSHOT_SHA256_BYTES];
    int rc;

    if ((rc = fa_snapshot_weights(w, w_len, p, err)) < 0)
        return rc;
    if ((rc = fa_snapshot_sha256(sha, *w, *w_len, err)) < 0) {
        free(*w);
        *w = NULL;
        return rc;
    }
    fa_hex_encode(hex, sha, sizeof(sha));
    return FA_OK;
}

int fa_snapshot_tfjs_model_json(char **out, size_t *len_out, const fa_params *p,
                                const fa_snapshot_meta *meta, fa_error *err)
{
    unsigned char *w = NULL;
    char hex[2 * FA_SNAPSHOT_SHA256_BYTES + 1];
    json_t *root = NULL, *group, *paths, *manifest;
    size_t w_len = 0;
    int rc, bad = 0;

    *out = NULL;
    *len_out = 0;
    if ((rc = fa_snapshot__check_meta(meta, err)) < 0 ||
        (rc = weights_and_digest(&w, &w_len, hex, p, err)) < 0)
        goto cleanup;
    root = tfjs_head(p);
    group = json_object();
    paths = json_array();
    manifest = json_array();
    bad |= fa_snapshot__append(paths, json_string(FA_SNAPSHOT_TFJS_WEIGHTS));
    bad |= fa_snapshot__put(group, "paths", paths);
    bad |= fa_snapshot__put(group, "weights", weight_specs(p));
    bad |= fa_snapshot__append(manifest, group);
    bad |= fa_snapshot__put(root, "weightsManifest", manifest);
    bad |= fa_snapshot__put(root, "fedagg", fedagg_meta(p, meta, hex));
    if (bad) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory writing the model json");
        goto cleanup;
    }
    rc = dump(out, len_out, root, err);
cleanup:
    json_decref(root);
    free(w);
    return rc;
}

int fa_snapshot_tfjs_json(char **out, size_t *len_out, const fa_params *p,
                          const fa_snapshot_meta *meta, fa_error *err)
{
    unsigned char *w = NULL;
    char hex[2 * FA_SNAPSHOT_SHA256_BYTES + 1];
    char *b64 = NULL;
    json_t *root = NULL;
    size_t w_len = 0, b64_len;
    int rc, bad = 0;

    *out = NULL;
    *len_out = 0;
    if ((rc = fa_snapshot__check_meta(meta, err)) < 0 ||
        (rc = weights_and_digest(&w, &w_len, hex, p, err)) < 0)
        goto cleanup;
    b64 = malloc(FA_BASE64_LEN(w_len));
    if (b64 == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory encoding the weight data");
        goto cleanup;
    }
    fa_base64_encode(b64, FA_BASE64_LEN(w_len), w, w_len);
    b64_len = strlen(b64);
    root = tfjs_head(p);
    bad |= fa_snapshot__put(root, "weightSpecs", weight_specs(p));
    bad |= fa_snapshot__put(root, "weightData", json_stringn(b64, b64_len));
    bad |= fa_snapshot__put(root, "fedagg", fedagg_meta(p, meta, hex));
    if (bad) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory writing the model json");
        goto cleanup;
    }
    rc = dump(out, len_out, root, err);
cleanup:
    json_decref(root);
    free(b64);
    free(w);
    return rc;
}
