#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/util.h"

Test(util, parse_i64_is_strict)
{
    int64_t v = 0;

    cr_assert_eq(fa_parse_i64(&v, "42"), FA_OK);
    cr_assert_eq(v, 42);
    cr_assert_eq(fa_parse_i64(&v, "-7"), FA_OK);
    cr_assert_eq(v, -7);
    cr_assert_eq(fa_parse_i64(&v, ""), FA_EINVAL);
    cr_assert_eq(fa_parse_i64(&v, " 1"), FA_EINVAL);
    cr_assert_eq(fa_parse_i64(&v, "1 "), FA_EINVAL);
    cr_assert_eq(fa_parse_i64(&v, "12abc"), FA_EINVAL);
    cr_assert_eq(fa_parse_i64(&v, "99999999999999999999"), FA_EINVAL);
}

Test(util, parse_double_rejects_non_finite)
{
    double v = 0;

    cr_assert_eq(fa_parse_double(&v, "1e-5"), FA_OK);
    cr_assert_float_eq(v, 1e-5, 1e-20);
    cr_assert_eq(fa_parse_double(&v, "inf"), FA_EINVAL);
    cr_assert_eq(fa_parse_double(&v, "nan"), FA_EINVAL);
    cr_assert_eq(fa_parse_double(&v, "1e999"), FA_EINVAL);
    cr_assert_eq(fa_parse_double(&v, "0x"), FA_EINVAL);
}

Test(util, hex_round_trip)
{
    unsigned char in[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
    char hex[9];

    fa_hex_encode(hex, in, 4);
    cr_assert_str_eq(hex, "00ab10ff");
    cr_assert_eq(fa_hex_decode(back, 4, hex), FA_OK);
    cr_assert_arr_eq(back, in, 4);
    cr_assert_eq(fa_hex_decode(back, 4, "00ab10f"), FA_EINVAL);
    cr_assert_eq(fa_hex_decode(back, 4, "00ab10fg"), FA_EINVAL);
}

Test(util, file_write_read_exclusive)
{
    char dir[] = "/tmp/fa-util-XXXXXX";
    char path[128], *data = NULL;
    size_t len = 0;
    struct stat st;
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(mkdtemp(dir));
    (void)snprintf(path, sizeof(path), "%s/secret", dir);
    cr_assert_eq(fa_file_write(path, "abc", 3, 0600, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(fa_file_write(path, "xyz", 3, 0600, 1, &err), FA_ECONFLICT);
    cr_assert_eq(fa_file_read(&data, &len, path, 1024, &err), FA_OK);
    cr_assert_eq(len, 3);
    cr_assert_str_eq(data, "abc");
    free(data);
    cr_assert_eq(fa_file_read(&data, &len, path, 2, &err), FA_ETOOBIG);
    cr_assert_null(data);
    unlink(path);
    cr_assert_eq(fa_file_read(&data, &len, path, 2, &err), FA_ENOTFOUND);
    rmdir(dir);
}

Test(error, fail_formats_and_returns_code)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_fail(&err, FA_ECONFLICT, "model version %d is stale", 7), FA_ECONFLICT);
    cr_assert_eq(err.code, FA_ECONFLICT);
    cr_assert_str_eq(err.msg, "model version 7 is stale");
    cr_assert_eq(fa_fail(NULL, FA_EINVAL, "x"), FA_EINVAL);
    cr_assert_str_eq(fa_code_name(FA_EUNAVAIL), "unavailable");
    fa_error_clear(&err);
    cr_assert_eq(err.code, FA_OK);
}
