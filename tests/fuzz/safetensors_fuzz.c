/*
 * Fuzz target: the safetensors snapshot reader (outside input: snapshots are
 * uploaded, stored and served). Whatever it accepts must write back and read
 * again to the same parameters and metadata.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/params.h"
#include "model/snapshot.h"

/* Small enough to keep every input fast; larger embeddings only cost memory. */
#define FUZZ_MAX_ITEMS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_params *p = NULL, *again = NULL;
    fa_snapshot_meta meta, meta2;
    fa_error err = FA_ERROR_INIT;
    unsigned char *out = NULL;
    size_t out_len = 0;

    if (fa_snapshot_safetensors_parse(&p, &meta, data, size, FUZZ_MAX_ITEMS, &err) != FA_OK)
        return 0;
    if (fa_snapshot_safetensors(&out, &out_len, p, &meta, &err) != FA_OK ||
        fa_snapshot_safetensors_parse(&again, &meta2, out, out_len, FUZZ_MAX_ITEMS, &err) !=
            FA_OK ||
        fa_params_len(again) != fa_params_len(p) ||
        memcmp(fa_params_cdata(again), fa_params_cdata(p), fa_params_len(p) * sizeof(float)) != 0 ||
        meta2.version != meta.version || meta2.parent_version != meta.parent_version ||
        meta2.epsilon != meta.epsilon || meta2.delta != meta.delta)
        abort(); /* an accepted snapshot must survive a round trip */
    free(out);
    fa_params_free(again);
    fa_params_free(p);
    return 0;
}
