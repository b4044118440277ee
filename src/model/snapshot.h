/*
 * Model snapshots, byte for byte deterministic (same parameters and
 * metadata give the same bytes and SHA-256):
 *   - safetensors: u64 LE header length, a JSON header (__metadata__ first,
 *     then the tensors in layout order, dtype "F32", shape, data_offsets),
 *     space-padded so that the data starts 8-byte aligned, then the raw LE
 *     float32 data in layout order;
 *   - TensorFlow.js layers model: a Keras-2 functional topology (inputs
 *     user_vec float32 [null, 64] and item_id int32 [null, 1] holding the
 *     item row, id - 1) with weight specs in layout order, as model.json +
 *     group1-shard1of1.bin or as one JSON document with base64 weightData.
 * Outputs are new buffers owned by the caller (free()). Stateless; any
 * thread may call these on parameters nobody changes. Implemented in
 * snapshot.c (shared pieces, safetensors) and snapshot_tfjs.c.
 */
#ifndef FA_MODEL_SNAPSHOT_H
#define FA_MODEL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_params fa_params;

#define FA_SNAPSHOT_FORMAT_VERSION   1
#define FA_SNAPSHOT_MAX_HEADER_BYTES (1024 * 1024)
#define FA_SNAPSHOT_TFJS_WEIGHTS     "group1-shard1of1.bin" /* file name in the manifest */
#define FA_SNAPSHOT_SHA256_BYTES     32

/* What a snapshot says about itself besides the weights. */
typedef struct fa_snapshot_meta {
    int64_t version;        /* model version, >= 0 */
    int64_t parent_version; /* version it was derived from, -1 for an initial model */
    double epsilon;         /* cumulative privacy epsilon at publication */
    double delta;           /* privacy delta at publication */
    /*
     * The ledger entry that releases this version: its seq and the hash of
     * the entry before it (the release entry itself names this snapshot's
     * SHA-256, so it cannot be named here). 0 for a snapshot no release
     * made (the initial model, simulator files).
     */
    int64_t ledger_seq;
    unsigned char ledger_prev_hash[32];
} fa_snapshot_meta;

#define FA_SNAPSHOT_META_INIT                                                                      \
    {                                                                                              \
        0, -1, 0.0, 0.0, 0,                                                                        \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/*
 * The safetensors bytes of p and meta. __metadata__ holds the string values
 * format ("fedagg-ncf"), format_version, model_version, parent_version
 * ("none" or a number), epsilon, delta (%.17g) and num_items, and when
 * meta->ledger_seq > 0 also ledger_seq (decimal) and ledger_prev_hash (64
 * lower-case hex digits). FA_EINVAL for
 * bad metadata, FA_ENOMEM.
 */
int fa_snapshot_safetensors(unsigned char **out, size_t *len_out, const fa_params *p,
                            const fa_snapshot_meta *meta, fa_error *err) FA_MUST_CHECK;

/*
 * Parses safetensors bytes (outside input) into new parameters owned by the
 * caller and the metadata. Strict: header length bounded, one JSON object
 * without duplicate keys, exactly the nine layout tensors with dtype F32 and
 * the layout's shapes, offsets that tile the data section exactly, finite
 * values, and the metadata above (format_version 1). The item count comes
 * from the embedding shape and must be <= max_items (0: FA_PARAMS_MAX_ITEMS).
 * FA_EINVAL naming the first problem, FA_ETOOBIG, FA_ENOMEM.
 */
int fa_snapshot_safetensors_parse(fa_params **params_out, fa_snapshot_meta *meta_out,
                                  const unsigned char *buf, size_t len, size_t max_items,
                                  fa_error *err) FA_MUST_CHECK;

/* The weight data: every tensor in layout order as LE float32, no padding. FA_ENOMEM. */
int fa_snapshot_weights(unsigned char **out, size_t *len_out, const fa_params *p,
                        fa_error *err) FA_MUST_CHECK;

/*
 * The TF.js file form: model.json text whose weightsManifest names
 * FA_SNAPSHOT_TFJS_WEIGHTS (the bytes of fa_snapshot_weights). Also carries
 * a "fedagg" object with the metadata. NUL-terminated; *len_out excludes
 * the NUL. FA_EINVAL, FA_ENOMEM.
 */
int fa_snapshot_tfjs_model_json(char **out, size_t *len_out, const fa_params *p,
                                const fa_snapshot_meta *meta, fa_error *err) FA_MUST_CHECK;

/*
 * The TF.js single-response form for HTTP:
 *   {"format":"layers-model","generatedBy":"fedagg","convertedBy":null,
 *    "modelTopology":{...},"weightSpecs":[...],"weightData":"<base64>",
 *    "fedagg":{"formatVersion":1,"version":v,"parentVersion":p|null,
 *              "epsilon":e,"delta":d,"numItems":n,"weightsSha256":"<hex>"}}
 * A client base64-decodes weightData into one ArrayBuffer and passes
 * {modelTopology, weightSpecs, weightData} to tf.io.fromMemory().
 * NUL-terminated; *len_out excludes the NUL. FA_EINVAL, FA_ENOMEM.
 */
int fa_snapshot_tfjs_json(char **out, size_t *len_out, const fa_params *p,
                          const fa_snapshot_meta *meta, fa_error *err) FA_MUST_CHECK;

/* SHA-256 of len bytes (OpenSSL EVP). FA_EINTERNAL if the digest fails. */
int fa_snapshot_sha256(unsigned char out[FA_SNAPSHOT_SHA256_BYTES], const void *data, size_t len,
                       fa_error *err) FA_MUST_CHECK;

#endif
