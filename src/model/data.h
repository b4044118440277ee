/*
 * Interaction datasets in the leave-one-out layout of the MovieLens split
 * (loo_train.tsv: user, item, rating, timestamp; loo_test.tsv: user, test
 * item, 99 negatives; tab-separated, 1-based ids). Ids become 0-based rows:
 * row = id - 1 for users and items alike, so item id i is embedding row
 * i - 1 and a model for the data needs num_items >= the largest item id.
 * The files are outside input: every line is bounded and checked. A loaded
 * fa_dataset is immutable and may be read by any number of threads.
 */
#ifndef FA_MODEL_DATA_H
#define FA_MODEL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define FA_DATASET_TRAIN_FILE "loo_train.tsv"
#define FA_DATASET_TEST_FILE  "loo_test.tsv"
#define FA_DATASET_NEGATIVES  99 /* sampled negatives per test line */
#define FA_DATASET_CANDIDATES (1 + FA_DATASET_NEGATIVES)

typedef struct fa_dataset fa_dataset;

/* Limits applied while parsing; ids above them are rejected. */
typedef struct fa_dataset_limits {
    size_t max_file_bytes; /* per file */
    int32_t max_users;     /* largest user id */
    int32_t max_items;     /* largest item id */
} fa_dataset_limits;

#define FA_DATASET_LIMITS_INIT                                                                     \
    {                                                                                              \
        (size_t)1 << 30, 1000000, 1000000                                                          \
    }

/*
 * One user's training interactions (a device's own data): items are rows,
 * strictly increasing; ratings[i] belongs to items[i]. Borrowed view.
 */
typedef struct fa_device_data {
    const int32_t *items;
    const float *ratings;
    size_t count;
} fa_device_data;

/*
 * Loads DIR/loo_train.tsv and DIR/loo_test.tsv (limits may be NULL for the
 * defaults). The dataset belongs to the caller. FA_ENOTFOUND for a missing
 * file, FA_ETOOBIG, FA_EINVAL with the file and line of the first bad line.
 */
int fa_dataset_load(fa_dataset **out, const char *dir, const fa_dataset_limits *limits,
                    fa_error *err) FA_MUST_CHECK;

/*
 * Parses the two files from memory (not necessarily NUL-terminated). The
 * test text may be empty (no evaluation lines). Same errors as
 * fa_dataset_load.
 */
int fa_dataset_parse(fa_dataset **out, const char *train, size_t train_len, const char *test,
                     size_t test_len, const fa_dataset_limits *limits, fa_error *err) FA_MUST_CHECK;

/* Frees ds; NULL-safe. */
void fa_dataset_free(fa_dataset *ds);

/* Users (largest user id) and items (largest item id seen in either file). */
int32_t fa_dataset_num_users(const fa_dataset *ds);
int32_t fa_dataset_num_items(const fa_dataset *ds);

/* Training interactions over all users. */
size_t fa_dataset_num_interactions(const fa_dataset *ds);

/* Users that have a test line. */
int32_t fa_dataset_num_test_users(const fa_dataset *ds);

/* The training interactions of user row u (0 <= u < num_users), borrowed. */
fa_device_data fa_dataset_user(const fa_dataset *ds, int32_t u);

/*
 * The FA_DATASET_CANDIDATES item rows of user row u's test line (the test
 * item first, then the negatives), borrowed; NULL when u has no test line.
 */
const int32_t *fa_dataset_test(const fa_dataset *ds, int32_t u);

#endif
