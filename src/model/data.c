#include "model/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/internal.h"

#define TRAIN_FIELDS   4
#define TEST_FIELDS    (1 + FA_DATASET_CANDIDATES)
#define MAX_ID_DIGITS  10 /* int32 ids */
#define MAX_NUM_CHARS  31 /* a rating */
#define MAX_TIME_CHARS 20 /* digits of a timestamp (u64) */
#define MAX_RATING_ABS 1e9
#define PATH_BYTES     4096

struct fa_dataset {
    int32_t num_users;
    int32_t num_items;
    size_t n_inter;   /* training interactions */
    size_t *user_off; /* [num_users + 1]: user u owns [user_off[u], user_off[u+1]) */
    int32_t *items;   /* [n_inter] item rows, increasing within a user */
    float *ratings;   /* [n_inter] */
    int32_t *test_of; /* [num_users] index of the user's test line, -1 without one */
    int32_t *test;    /* [n_test * FA_DATASET_CANDIDATES] item rows */
    int32_t n_test;   /* test lines */
};

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct field {
    const char *s;
    size_t len;
} field;

typedef struct line_reader {
    const char *p, *end;
    uint32_t line; /* 1-based number of the line last returned */
} line_reader;

/* Returns 1 and the next line without its "\n" or "\r\n", or 0 at the end. */
static int next_line(line_reader *r, const char **s, size_t *len)
{
    const char *nl;

    if (r->p >= r->end)
        return 0;
    nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    *s = r->p;
    if (nl == NULL) {
        *len = (size_t)(r->end - r->p);
        r->p = r->end;
    } else {
        *len = (size_t)(nl - r->p);
        r->p = nl + 1;
    }
    if (*len > 0 && (*s)[*len - 1] == '\r')
        (*len)--;
    r->line++;
    return 1;
}

/* Splits a line at tabs into at most max fields; returns the count, max + 1 when there are more. */
static int split_fields(field *f, int max, const char *s, size_t len)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '\t')
            continue;
        if (n == max)
            return max + 1;
        f[n].s = s + start;
        f[n].len = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

/* A decimal id in 1..max with no sign, space or leading junk. */
static int parse_id(int32_t *out, const field *f, int32_t max)
{
    int64_t v = 0;

    if (f->len == 0 || f->len > MAX_ID_DIGITS)
        return -1;
    for (size_t i = 0; i < f->len; i++) {
        if (f->s[i] < '0' || f->s[i] > '9')
            return -1;
        v = v * 10 + (f->s[i] - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static int parse_rating(float *out, const field *f)
{
    char buf[MAX_NUM_CHARS + 1];
    double v;

    if (f->len == 0 || f->len > MAX_NUM_CHARS)
        return -1;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
            return -1;
    }
    memcpy(buf, f->s, f->len);
    buf[f->len] = '\0';
    if (fa_parse_double(&v, buf) < 0 || fabs(v) > MAX_RATING_ABS)
        return -1;
    *out = (float)v;
    return 0;
}

static int check_timestamp(const field *f)
{
    if (f->len == 0 || f->len > MAX_TIME_CHARS)
        return -1;
    for (size_t i = 0; i < f->len; i++)
        if (f->s[i] < '0' || f->s[i] > '9')
            return -1;
    return 0;
}

/* Grows *buf (elements of size elem) to hold at least need elements. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap == 0 ? 1024 : *cap;
    void *p;

    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    p = realloc(*buf, ncap * elem);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = ncap;
    return 0;
}

static int contains(const int32_t *sorted, size_t n, int32_t item)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] == item;
}

static int cmp_rows(const void *a, const void *b)
{
    const fa_rating_row *x = a, *y = b;

    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    if (x->item != y->item)
        return x->item < y->item ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

    return x < y ? -1 : x > y;
}

/* ---- building ------------------------------------------------------------------------------ */

void fa_dataset_free(fa_dataset *ds)
{
    if (ds == NULL)
        return;
    free(ds->user_off);
    free(ds->items);
    free(ds->ratings);
    free(ds->test_of);
    free(ds->test);
    free(ds);
}

static int check_test_line(const fa_dataset *ds, const int32_t *cand, uint32_t line, int32_t u,
                           fa_error *err)
{
    int32_t sorted[FA_DATASET_CANDIDATES];
    const int32_t *train = ds->items + ds->user_off[u];
    size_t n_train = ds->user_off[u + 1] - ds->user_off[u];

    memcpy(sorted, cand, sizeof(sorted));
    qsort(sorted, FA_DATASET_CANDIDATES, sizeof(int32_t), cmp_i32);
    for (int i = 1; i < FA_DATASET_CANDIDATES; i++)
        if (sorted[i] == sorted[i - 1])
            return fa_fail(err, FA_EINVAL, "%s line %u: item %d appears twice among the candidates",
                           FA_DATASET_TEST_FILE, line, sorted[i] + 1);
    if (contains(train, n_train, cand[0]))
        return fa_fail(err, FA_EINVAL,
                       "%s line %u: test item %d is also a training item of user %d",
                       FA_DATASET_TEST_FILE, line, cand[0] + 1, u + 1);
    for (int i = 1; i < FA_DATASET_CANDIDATES; i++)
        if (contains(train, n_train, cand[i]))
            return fa_fail(err, FA_EINVAL,
                           "%s line %u: negative item %d is a training item of user %d",
                           FA_DATASET_TEST_FILE, line, cand[i] + 1, u + 1);
    return FA_OK;
}

int fa_data__build(fa_dataset **out, int32_t num_users, int32_t num_items, fa_rating_row *rows,
                   size_t n_rows, const int32_t *test, const uint32_t *test_lines, size_t n_test,
                   fa_error *err)
{
    fa_dataset *ds = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (num_users < 1 || num_items < 1 || n_test > INT32_MAX)
        return fa_fail(err, FA_EINVAL, "the dataset has no users or no items");
    ds = calloc(1, sizeof(*ds));
    if (ds == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the dataset");
    ds->num_users = num_users;
    ds->num_items = num_items;
    ds->n_inter = n_rows;
    ds->n_test = (int32_t)n_test;
    ds->user_off = calloc((size_t)num_users + 1, sizeof(size_t));
    ds->items = malloc((n_rows > 0 ? n_rows : 1) * sizeof(int32_t));
    ds->ratings = malloc((n_rows > 0 ? n_rows : 1) * sizeof(float));
    ds->test_of = malloc((size_t)num_users * sizeof(int32_t));
    ds->test = malloc((n_test > 0 ? n_test : 1) * FA_DATASET_CANDIDATES * sizeof(int32_t));
    if (ds->user_off == NULL || ds->items == NULL || ds->ratings == NULL || ds->test_of == NULL ||
        ds->test == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the dataset");
        goto cleanup;
    }

    /* Group by user, items increasing; a repeated pair is an error in the source. */
    if (n_rows > 0)
        qsort(rows, n_rows, sizeof(*rows), cmp_rows);
    for (size_t i = 0; i < n_rows; i++) {
        if (i > 0 && rows[i].user == rows[i - 1].user && rows[i].item == rows[i - 1].item) {
            if (rows[i].line > 0)
                rc = fa_fail(err, FA_EINVAL, "%s line %u: user %d already rated item %d on line %u",
                             FA_DATASET_TRAIN_FILE, rows[i].line, rows[i].user + 1,
                             rows[i].item + 1, rows[i - 1].line);
            else
                rc = fa_fail(err, FA_EINVAL, "user %d has item %d twice", rows[i].user + 1,
                             rows[i].item + 1);
            goto cleanup;
        }
        ds->user_off[rows[i].user + 1]++;
        ds->items[i] = rows[i].item;
        ds->ratings[i] = rows[i].rating;
    }
    for (int32_t u = 0; u < num_users; u++)
        ds->user_off[u + 1] += ds->user_off[u];

    for (int32_t u = 0; u < num_users; u++)
        ds->test_of[u] = -1;
    for (size_t k = 0; k < n_test; k++) {
        const int32_t *line = test + k * (1 + FA_DATASET_CANDIDATES);
        int32_t u = line[0];
        uint32_t ln = test_lines != NULL ? test_lines[k] : 0;

        if (ds->test_of[u] >= 0) {
            rc = fa_fail(err, FA_EINVAL, "%s line %u: user %d already has a test line",
                         FA_DATASET_TEST_FILE, ln, u + 1);
            goto cleanup;
        }
        if ((rc = check_test_line(ds, line + 1, ln, u, err)) < 0)
            goto cleanup;
        ds->test_of[u] = (int32_t)k;
        memcpy(ds->test + k * FA_DATASET_CANDIDATES, line + 1,
               FA_DATASET_CANDIDATES * sizeof(int32_t));
    }
    *out = ds;
    ds = NULL;
cleanup:
    fa_dataset_free(ds);
    return rc;
}

/* ---- parsing ------------------------------------------------------------------------------- */

typedef struct parse_state {
    fa_rating_row *rows;
    size_t n_rows, cap_rows;
    int32_t *test; /* lines of 1 + FA_DATASET_CANDIDATES ints */
    uint32_t *test_lines;
    size_t n_test, cap_test, cap_test_lines;
    int32_t max_user, max_item; /* largest ids seen */
} parse_state;

static int parse_train(parse_state *st, const char *text, size_t len, const fa_dataset_limits *lim,
                       fa_error *err)
{
    line_reader r = {text, text + len, 0};
    field f[TRAIN_FIELDS];
    const char *s;
    size_t n;

    while (next_line(&r, &s, &n)) {
        fa_rating_row row;
        int nf;

        if (n == 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: empty line", FA_DATASET_TRAIN_FILE, r.line);
        nf = split_fields(f, TRAIN_FIELDS, s, n);
        if (nf != TRAIN_FIELDS)
            return fa_fail(
                err, FA_EINVAL, "%s line %u: expected %d tab-separated fields, found %s%d",
                FA_DATASET_TRAIN_FILE, r.line, TRAIN_FIELDS, nf > TRAIN_FIELDS ? "more than " : "",
                nf > TRAIN_FIELDS ? TRAIN_FIELDS : nf);
        if (parse_id(&row.user, &f[0], lim->max_users) < 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: user id is not an integer in 1..%d",
                           FA_DATASET_TRAIN_FILE, r.line, lim->max_users);
        if (parse_id(&row.item, &f[1], lim->max_items) < 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: item id is not an integer in 1..%d",
                           FA_DATASET_TRAIN_FILE, r.line, lim->max_items);
        if (parse_rating(&row.rating, &f[2]) < 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: rating is not a finite number",
                           FA_DATASET_TRAIN_FILE, r.line);
        if (check_timestamp(&f[3]) < 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: timestamp is not a non-negative integer",
                           FA_DATASET_TRAIN_FILE, r.line);
        if (row.user > st->max_user)
            st->max_user = row.user;
        if (row.item > st->max_item)
            st->max_item = row.item;
        row.user--;
        row.item--;
        row.line = r.line;
        if (grow((void **)&st->rows, &st->cap_rows, st->n_rows + 1, sizeof(*st->rows)) < 0)
            return fa_fail(err, FA_ENOMEM, "out of memory reading %s", FA_DATASET_TRAIN_FILE);
        st->rows[st->n_rows++] = row;
    }
    return FA_OK;
}

static int parse_test(parse_state *st, const char *text, size_t len, const fa_dataset_limits *lim,
                      fa_error *err)
{
    line_reader r = {text, text + len, 0};
    field f[TEST_FIELDS];
    const char *s;
    size_t n;

    while (next_line(&r, &s, &n)) {
        int32_t line[TEST_FIELDS];
        int nf;

        if (n == 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: empty line", FA_DATASET_TEST_FILE, r.line);
        nf = split_fields(f, TEST_FIELDS, s, n);
        if (nf != TEST_FIELDS)
            return fa_fail(
                err, FA_EINVAL, "%s line %u: expected %d tab-separated fields, found %s%d",
                FA_DATASET_TEST_FILE, r.line, TEST_FIELDS, nf > TEST_FIELDS ? "more than " : "",
                nf > TEST_FIELDS ? TEST_FIELDS : nf);
        if (parse_id(&line[0], &f[0], lim->max_users) < 0)
            return fa_fail(err, FA_EINVAL, "%s line %u: user id is not an integer in 1..%d",
                           FA_DATASET_TEST_FILE, r.line, lim->max_users);
        for (int i = 1; i < TEST_FIELDS; i++)
            if (parse_id(&line[i], &f[i], lim->max_items) < 0)
                return fa_fail(err, FA_EINVAL,
                               "%s line %u: field %d (item id) is not an integer in 1..%d",
                               FA_DATASET_TEST_FILE, r.line, i + 1, lim->max_items);
        if (line[0] > st->max_user)
            st->max_user = line[0];
        for (int i = 0; i < TEST_FIELDS; i++) {
            if (i > 0 && line[i] > st->max_item)
                st->max_item = line[i];
            line[i]--;
        }
        if (grow((void **)&st->test, &st->cap_test, (st->n_test + 1) * TEST_FIELDS,
                 sizeof(int32_t)) < 0 ||
            grow((void **)&st->test_lines, &st->cap_test_lines, st->n_test + 1, sizeof(uint32_t)) <
                0)
            return fa_fail(err, FA_ENOMEM, "out of memory reading %s", FA_DATASET_TEST_FILE);
        memcpy(st->test + st->n_test * TEST_FIELDS, line, sizeof(line));
        st->test_lines[st->n_test++] = r.line;
    }
    return FA_OK;
}

int fa_dataset_parse(fa_dataset **out, const char *train, size_t train_len, const char *test,
                     size_t test_len, const fa_dataset_limits *limits, fa_error *err)
{
    static const fa_dataset_limits DEFAULTS = FA_DATASET_LIMITS_INIT;
    const fa_dataset_limits *lim = limits != NULL ? limits : &DEFAULTS;
    parse_state st = {0};
    int rc;

    *out = NULL;
    if (train == NULL)
        train = "", train_len = 0;
    if (test == NULL)
        test = "", test_len = 0;
    if (train_len > lim->max_file_bytes || test_len > lim->max_file_bytes) {
        rc = fa_fail(err, FA_ETOOBIG, "dataset file is larger than %zu bytes", lim->max_file_bytes);
        goto cleanup;
    }
    if ((rc = parse_train(&st, train, train_len, lim, err)) < 0 ||
        (rc = parse_test(&st, test, test_len, lim, err)) < 0)
        goto cleanup;
    if (st.n_rows == 0) {
        rc = fa_fail(err, FA_EINVAL, "%s has no interactions", FA_DATASET_TRAIN_FILE);
        goto cleanup;
    }
    rc = fa_data__build(out, st.max_user, st.max_item, st.rows, st.n_rows, st.test, st.test_lines,
                        st.n_test, err);
cleanup:
    free(st.rows);
    free(st.test);
    free(st.test_lines);
    return rc;
}

int fa_dataset_load(fa_dataset **out, const char *dir, const fa_dataset_limits *limits,
                    fa_error *err)
{
    static const fa_dataset_limits DEFAULTS = FA_DATASET_LIMITS_INIT;
    const fa_dataset_limits *lim = limits != NULL ? limits : &DEFAULTS;
    char path[PATH_BYTES];
    char *train = NULL, *test = NULL;
    size_t train_len = 0, test_len = 0;
    int rc;

    *out = NULL;
    if (snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TRAIN_FILE) >= (int)sizeof(path))
        return fa_fail(err, FA_EINVAL, "dataset directory path is too long");
    if ((rc = fa_file_read(&train, &train_len, path, lim->max_file_bytes, err)) < 0)
        goto cleanup;
    if (snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TEST_FILE) >= (int)sizeof(path)) {
        rc = fa_fail(err, FA_EINVAL, "dataset directory path is too long");
        goto cleanup;
    }
    if ((rc = fa_file_read(&test, &test_len, path, lim->max_file_bytes, err)) < 0 ||
        (rc = fa_dataset_parse(out, train, train_len, test, test_len, lim, err)) < 0)
        goto cleanup;
cleanup:
    free(train);
    free(test);
    return rc;
}

/* ---- accessors ----------------------------------------------------------------------------- */

int32_t fa_dataset_num_users(const fa_dataset *ds)
{
    return ds->num_users;
}

int32_t fa_dataset_num_items(const fa_dataset *ds)
{
    return ds->num_items;
}

size_t fa_dataset_num_interactions(const fa_dataset *ds)
{
    return ds->n_inter;
}

int32_t fa_dataset_num_test_users(const fa_dataset *ds)
{
    return ds->n_test;
}

fa_device_data fa_dataset_user(const fa_dataset *ds, int32_t u)
{
    fa_device_data d;
    size_t begin = ds->user_off[u];

    d.items = ds->items + begin;
    d.ratings = ds->ratings + begin;
    d.count = ds->user_off[u + 1] - begin;
    return d;
}

const int32_t *fa_dataset_test(const fa_dataset *ds, int32_t u)
{
    int32_t k = ds->test_of[u];

    return k < 0 ? NULL : ds->test + (size_t)k * FA_DATASET_CANDIDATES;
}
