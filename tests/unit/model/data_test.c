#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/data.h"
#include "model/synth.h"

#define TRAIN_OK "1\t2\t3\t101\n1\t1\t5\t100\n2\t3\t4\t102\n"

/* A loo_test.tsv line: user, test item, negatives first..first+98. */
static void test_line(char *out, size_t size, int user, int test_item, int first)
{
    int n = snprintf(out, size, "%d\t%d", user, test_item);

    for (int i = 0; i < 99; i++)
        n += snprintf(out + n, size - (size_t)n, "\t%d", first + i);
    (void)snprintf(out + n, size - (size_t)n, "\n");
}

static char g_test[2][2048];

static const char *valid_test(void)
{
    static char both[4096];

    test_line(g_test[0], sizeof(g_test[0]), 1, 3, 4);
    test_line(g_test[1], sizeof(g_test[1]), 2, 1, 4);
    (void)snprintf(both, sizeof(both), "%s%s", g_test[0], g_test[1]);
    return both;
}

static int parse(fa_dataset **ds, const char *train, const char *test, fa_error *err)
{
    return fa_dataset_parse(ds, train, strlen(train), test, strlen(test), NULL, err);
}

static void expect_error(const char *train, const char *test, const char *needle)
{
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(parse(&ds, train, test, &err), FA_EINVAL, "accepted: %s", needle);
    cr_assert_null(ds);
    cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

Test(data, parses_valid_files)
{
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_device_data d;
    const int32_t *t;

    cr_assert_eq(parse(&ds, TRAIN_OK, valid_test(), &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_dataset_num_users(ds), 2);
    cr_assert_eq(fa_dataset_num_items(ds), 102);
    cr_assert_eq(fa_dataset_num_interactions(ds), 3u);
    cr_assert_eq(fa_dataset_num_test_users(ds), 2);
    d = fa_dataset_user(ds, 0);
    cr_assert_eq(d.count, 2u);
    /* Rows are id - 1 and sorted; ratings follow their items. */
    cr_assert_eq(d.items[0], 0);
    cr_assert_eq(d.items[1], 1);
    cr_assert_float_eq(d.ratings[0], 5.0f, 1e-7);
    cr_assert_float_eq(d.ratings[1], 3.0f, 1e-7);
    t = fa_dataset_test(ds, 1);
    cr_assert_not_null(t);
    cr_assert_eq(t[0], 0);
    cr_assert_eq(t[1], 3);
    cr_assert_eq(t[99], 101);
    fa_dataset_free(ds);
}

Test(data, accepts_crlf_and_a_missing_final_newline)
{
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(parse(&ds, "1\t2\t3\t101\r\n1\t1\t5\t100", "", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_dataset_num_test_users(ds), 0);
    cr_assert_null(fa_dataset_test(ds, 0));
    fa_dataset_free(ds);
}

Test(data, rejects_malformed_train_lines_naming_the_line)
{
    const char *test = valid_test();

    expect_error("1\t2\t3\t101\n1\t1\t5\n", test, "loo_train.tsv line 2: expected 4");
    expect_error("1\t2\t3\t101\t7\n", test, "line 1: expected 4 tab-separated fields, found more");
    expect_error("1 2 3 101\n", test, "line 1: expected 4");
    expect_error("1\t2\t3\t101\nx1\t1\t5\t100\n", test, "line 2: user id");
    expect_error("0\t2\t3\t101\n", test, "line 1: user id");
    expect_error("-1\t2\t3\t101\n", test, "line 1: user id");
    expect_error("1\t2000000\t3\t101\n", test, "line 1: item id");
    expect_error("1\t99999999999\t3\t101\n", test, "line 1: item id");
    expect_error("1\t\t3\t101\n", test, "line 1: item id");
    expect_error("1\t2\tabc\t101\n", test, "line 1: rating");
    expect_error("1\t2\tnan\t101\n", test, "line 1: rating");
    expect_error("1\t2\t1e999\t101\n", test, "line 1: rating");
    expect_error("1\t2\t3\t-5\n", test, "line 1: timestamp");
    expect_error("1\t2\t3\t101\n\n1\t1\t5\t100\n", test, "line 2: empty line");
    expect_error("1\t2\t3\t101\n1\t2\t4\t102\n", test,
                 "line 2: user 1 already rated item 2 on line 1");
    expect_error("", test, "no interactions");
}

Test(data, rejects_inconsistent_test_lines)
{
    char bad[4096];

    test_line(bad, sizeof(bad), 1, 3, 4);
    {
        size_t l = strlen(bad) - 1; /* overwrite the newline: one field too many */
        (void)snprintf(bad + l, sizeof(bad) - l, "\t7\n");
    }
    expect_error(TRAIN_OK, bad, "loo_test.tsv line 1: expected 101");
    test_line(bad, sizeof(bad), 1, 3, 3);
    expect_error(TRAIN_OK, bad, "line 1: item 3 appears twice");
    test_line(bad, sizeof(bad), 1, 3, 4);
    memcpy(strrchr(bad, '\t'), "\t2\n", 4); /* the last negative becomes training item 2 */
    expect_error(TRAIN_OK, bad, "line 1: negative item 2 is a training item of user 1");
    test_line(bad, sizeof(bad), 1, 1, 4);
    expect_error(TRAIN_OK, bad, "line 1: test item 1 is also a training item");
    {
        char two[4096];
        test_line(bad, sizeof(bad), 1, 3, 4);
        (void)snprintf(two, sizeof(two), "%s%s", bad, bad);
        expect_error(TRAIN_OK, two, "line 2: user 1 already has a test line");
    }
    test_line(bad, sizeof(bad), 1, 3, 4);
    bad[2] = 'z';
    expect_error(TRAIN_OK, bad, "line 1: field 2 (item id)");
}

Test(data, enforces_limits)
{
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_dataset_limits lim = FA_DATASET_LIMITS_INIT;

    lim.max_file_bytes = 8;
    cr_assert_eq(fa_dataset_parse(&ds, TRAIN_OK, strlen(TRAIN_OK), "", 0, &lim, &err), FA_ETOOBIG);
    lim = (fa_dataset_limits)FA_DATASET_LIMITS_INIT;
    lim.max_users = 1;
    cr_assert_eq(fa_dataset_parse(&ds, TRAIN_OK, strlen(TRAIN_OK), "", 0, &lim, &err), FA_EINVAL);
    cr_assert_not_null(strstr(err.msg, "line 3: user id is not an integer in 1..1"));
}

Test(data, loads_from_a_directory)
{
    char dir[] = "/tmp/fa-data-XXXXXX", path[256];
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;
    FILE *f;

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(fa_dataset_load(&ds, dir, NULL, &err), FA_ENOTFOUND);
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TRAIN_FILE);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(TRAIN_OK, f);
    fclose(f);
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TEST_FILE);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(valid_test(), f);
    fclose(f);
    cr_assert_eq(fa_dataset_load(&ds, dir, NULL, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_dataset_num_test_users(ds), 2);
    fa_dataset_free(ds);
    unlink(path);
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_DATASET_TRAIN_FILE);
    unlink(path);
    rmdir(dir);
}

Test(data, synthetic_data_has_the_loader_invariants)
{
    fa_synth_opts o = FA_SYNTH_OPTS_INIT;
    fa_dataset *ds = NULL, *again = NULL;
    fa_error err = FA_ERROR_INIT;

    o.num_users = 30;
    o.num_items = 150;
    o.positives = 10;
    cr_assert_eq(fa_synth_dataset(&ds, &o, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_synth_dataset(&again, &o, &err), FA_OK);
    cr_assert_eq(fa_dataset_num_users(ds), 30);
    cr_assert_eq(fa_dataset_num_items(ds), 150);
    cr_assert_eq(fa_dataset_num_test_users(ds), 30);
    for (int32_t u = 0; u < 30; u++) {
        fa_device_data d = fa_dataset_user(ds, u), e = fa_dataset_user(again, u);
        cr_assert_eq(d.count, 10u);
        cr_assert_eq(memcmp(d.items, e.items, d.count * sizeof(int32_t)), 0);
        for (size_t i = 1; i < d.count; i++)
            cr_assert_lt(d.items[i - 1], d.items[i]);
        cr_assert_not_null(fa_dataset_test(ds, u));
    }
    fa_dataset_free(ds);
    fa_dataset_free(again);
    o.num_items = 100; /* fewer than positives + 100 */
    cr_assert_eq(fa_synth_dataset(&ds, &o, &err), FA_EINVAL);
}
