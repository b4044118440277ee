#include "model/synth.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "model/data.h"
#include "model/internal.h"
#include "model/rng.h"

#define MAX_USERS      1000000
#define MAX_ITEMS      100000
#define MAX_LATENT     256
#define STREAM_FACTORS 5u
#define STREAM_DRAWS   6u

typedef struct keyed {
    double key;
    int32_t item;
} keyed;

static int cmp_key_desc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;

    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

int fa_synth_dataset(fa_dataset **out, const fa_synth_opts *o, fa_error *err)
{
    int32_t nu = o->num_users, ni = o->num_items, np = o->positives, d = o->latent_dim;
    double *uf = NULL, *vf = NULL, *pop = NULL;
    keyed *keys = NULL;
    fa_rating_row *rows = NULL;
    int32_t *test = NULL, *pool = NULL;
    unsigned char *taken = NULL;
    fa_rng rf, rd;
    int rc = FA_OK;

    *out = NULL;
    if (nu < 1 || nu > MAX_USERS || np < 1 || ni < np + 1 + FA_DATASET_NEGATIVES ||
        ni > MAX_ITEMS || d < 1 || d > MAX_LATENT || !(o->temperature > 0.0))
        return fa_fail(err, FA_EINVAL, "synthetic dataset options are out of range");
    uf = malloc((size_t)nu * (size_t)d * sizeof(double));
    vf = malloc((size_t)ni * (size_t)d * sizeof(double));
    pop = malloc((size_t)ni * sizeof(double));
    keys = malloc((size_t)ni * sizeof(keyed));
    rows = malloc((size_t)nu * (size_t)np * sizeof(fa_rating_row));
    test = malloc((size_t)nu * (1 + FA_DATASET_CANDIDATES) * sizeof(int32_t));
    pool = malloc((size_t)ni * sizeof(int32_t));
    taken = malloc((size_t)ni);
    if (uf == NULL || vf == NULL || pop == NULL || keys == NULL || rows == NULL || test == NULL ||
        pool == NULL || taken == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the synthetic dataset");
        goto cleanup;
    }
    fa_rng_init(&rf, o->seed, STREAM_FACTORS);
    fa_rng_init(&rd, o->seed, STREAM_DRAWS);
    for (size_t i = 0; i < (size_t)nu * (size_t)d; i++)
        uf[i] = fa_rng_normal(&rf);
    for (size_t i = 0; i < (size_t)ni * (size_t)d; i++)
        vf[i] = fa_rng_normal(&rf);
    for (int32_t i = 0; i < ni; i++)
        pop[i] = 0.5 * fa_rng_normal(&rf);

    for (int32_t u = 0; u < nu; u++) {
        int32_t *line = test + (size_t)u * (1 + FA_DATASET_CANDIDATES);
        int32_t held, n_pool = 0;

        /* Gumbel top-k: keys = affinity / T + Gumbel(0, 1) samples without replacement. */
        for (int32_t i = 0; i < ni; i++) {
            double s = pop[i];
            for (int32_t j = 0; j < d; j++)
                s += uf[(size_t)u * (size_t)d + (size_t)j] * vf[(size_t)i * (size_t)d + (size_t)j] /
                     sqrt((double)d);
            /* uniform + 2^-54 lies strictly inside (0, 1), so both logarithms are finite. */
            keys[i].key = s / o->temperature - log(-log(fa_rng_uniform(&rd) + 0x1.0p-54));
            keys[i].item = i;
        }
        qsort(keys, (size_t)ni, sizeof(keyed), cmp_key_desc);
        held = (int32_t)fa_rng_below(&rd, (uint32_t)(np + 1));
        memset(taken, 0, (size_t)ni);
        for (int32_t k = 0, r = 0; k <= np; k++) {
            int32_t item = keys[k].item;
            taken[item] = 1;
            if (k == held)
                continue;
            rows[(size_t)u * (size_t)np + (size_t)r].user = u;
            rows[(size_t)u * (size_t)np + (size_t)r].item = item;
            /* A 1..5 rating that grows with the item's place in the user's draw. */
            rows[(size_t)u * (size_t)np + (size_t)r].rating = (float)(5 - (5 * k) / (np + 1));
            rows[(size_t)u * (size_t)np + (size_t)r].line = 0;
            r++;
        }
        line[0] = u;
        line[1] = keys[held].item;
        for (int32_t i = 0; i < ni; i++)
            if (!taken[i])
                pool[n_pool++] = i;
        /* 99 distinct negatives: a partial Fisher-Yates shuffle of the untouched items. */
        for (int32_t k = 0; k < FA_DATASET_NEGATIVES; k++) {
            int32_t j = k + (int32_t)fa_rng_below(&rd, (uint32_t)(n_pool - k));
            int32_t tmp = pool[k];
            pool[k] = pool[j];
            pool[j] = tmp;
            line[2 + k] = pool[k];
        }
    }
    rc = fa_data__build(out, nu, ni, rows, (size_t)nu * (size_t)np, test, NULL, (size_t)nu, err);
cleanup:
    free(uf);
    free(vf);
    free(pop);
    free(keys);
    free(rows);
    free(test);
    free(pool);
    free(taken);
    return rc;
}

/* ============================================================== writing */

typedef struct textbuf {
    char *p;
    size_t len, cap;
} textbuf;

/* Appends one printf-formatted piece; -1 when out of memory. */
static int append(textbuf *b, const char *fmt, ...) FA_PRINTF(2, 3);

static int append(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p == NULL ? NULL : b->p + b->len, b->p == NULL ? 0 : b->cap - b->len, fmt,
                      ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (b->p != NULL && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = b->cap == 0 ? 1 << 16 : b->cap * 2;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
}

int fa_synth_write(const fa_dataset *ds, const char *dir, fa_error *err)
{
    textbuf train = {NULL, 0, 0}, test = {NULL, 0, 0};
    char path[4096];
    int bad = 0, rc;

    for (int32_t u = 0; u < fa_dataset_num_users(ds) && !bad; u++) {
        fa_device_data dev = fa_dataset_user(ds, u);
        const int32_t *cand = fa_dataset_test(ds, u);
        for (size_t i = 0; i < dev.count && !bad; i++)
            bad = append(&train, "%d\t%d\t%g\t0\n", (int)u + 1, (int)dev.items[i] + 1,
                         (double)dev.ratings[i]) < 0;
        if (cand == NULL)
            continue;
        bad |= append(&test, "%d", (int)u + 1) < 0;
        for (int k = 0; k < FA_DATASET_CANDIDATES && !bad; k++)
            bad = append(&test, "\t%d", (int)cand[k] + 1) < 0;
        bad |= append(&test, "\n") < 0;
    }
    if (bad) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory writing the synthetic dataset");
        goto cleanup;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = fa_fail(err, FA_EINVAL, "cannot create %s: %s", dir, strerror(errno));
        goto cleanup;
    }
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TRAIN_FILE);
    if ((rc = fa_file_write(path, train.p, train.len, 0644, 1, err)) < 0)
        goto cleanup;
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TEST_FILE);
    rc = fa_file_write(path, test.p == NULL ? "" : test.p, test.len, 0644, 1, err);
cleanup:
    free(train.p);
    free(test.p);
    return rc;
}
