#include <criterion/criterion.h>
#include <math.h>

#include "model/vec.h"

Test(vec, axpy_dot_scale_norm)
{
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {1, 1, 1, 1, 1};

    fa_vec_axpy(y, 2.0f, x, 5);
    cr_assert_float_eq(y[4], 11.0f, 1e-6);
    cr_assert_float_eq(fa_vec_dot(x, x, 5), 55.0, 1e-9);
    cr_assert_float_eq(fa_vec_norm2(x, 5), sqrt(55.0), 1e-9);
    fa_vec_scale(x, 0.5f, 5);
    cr_assert_float_eq(x[1], 1.0f, 1e-7);
    fa_vec_copy(y, x, 5);
    cr_assert_float_eq(y[2], 1.5f, 1e-7);
    fa_vec_zero(y, 5);
    cr_assert_float_eq(fa_vec_norm2(y, 5), 0.0, 1e-12);
    cr_assert_float_eq(fa_vec_dot(x, y, 0), 0.0, 1e-12);
}

Test(vec, finite_check)
{
    float x[4] = {0.0f, -1.0f, 3e38f, 1e-38f};

    cr_assert(fa_vec_all_finite(x, 4));
    x[2] = INFINITY;
    cr_assert_not(fa_vec_all_finite(x, 4));
    x[2] = NAN;
    cr_assert_not(fa_vec_all_finite(x, 4));
    cr_assert(fa_vec_all_finite(x, 0));
}

Test(vec, threads_and_core)
{
    fa_vec_set_threads(1);
    cr_assert_eq(fa_vec_threads(), 1);
    cr_assert_not_null(fa_vec_blas_core());
}
