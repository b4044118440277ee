#include "model/vec.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include <cblas.h>

/* BLAS takes int lengths: larger vectors are processed in chunks of this many floats. */
#define CHUNK ((size_t)1 << 30)

void fa_vec_axpy(float *y, float a, const float *x, size_t n)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t len = n - off < CHUNK ? n - off : CHUNK;
        cblas_saxpy((blasint)len, a, x + off, 1, y + off, 1);
    }
}

double fa_vec_dot(const float *x, const float *y, size_t n)
{
    double sum = 0.0;

    for (size_t off = 0; off < n; off += CHUNK) {
        size_t len = n - off < CHUNK ? n - off : CHUNK;
        sum += cblas_dsdot((blasint)len, x + off, 1, y + off, 1);
    }
    return sum;
}

void fa_vec_scale(float *x, float a, size_t n)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t len = n - off < CHUNK ? n - off : CHUNK;
        cblas_sscal((blasint)len, a, x + off, 1);
    }
}

double fa_vec_norm2(const float *x, size_t n)
{
    return sqrt(fa_vec_dot(x, x, n));
}

void fa_vec_copy(float *dst, const float *src, size_t n)
{
    if (n > 0)
        memcpy(dst, src, n * sizeof(float));
}

void fa_vec_zero(float *x, size_t n)
{
    if (n > 0)
        memset(x, 0, n * sizeof(float));
}

int fa_vec_all_finite(const float *x, size_t n)
{
    /* x - x is 0 for finite x and NaN otherwise; accumulating keeps the loop branch-free. */
    float acc = 0.0f;

    for (size_t i = 0; i < n; i++)
        acc += x[i] - x[i];
    return acc == 0.0f;
}

void fa_vec_set_threads(int threads)
{
    openblas_set_num_threads(threads < 1 ? 1 : threads);
}

int fa_vec_threads(void)
{
    return openblas_get_num_threads();
}

const char *fa_vec_blas_core(void)
{
    return openblas_get_corename();
}

const char *fa_vec_better_coretype(void)
{
    /* Kernel sets OpenBLAS picks for CPUs newer than its tables (0.3.21 does not know some). */
    static const char *const GENERIC[] = {"Prescott", "Core2", "Penryn", "Nehalem", "Sandybridge"};
    const char *core = openblas_get_corename();
    int generic = 0;

    for (size_t i = 0; core != NULL && i < sizeof(GENERIC) / sizeof(GENERIC[0]); i++)
        if (strcasecmp(core, GENERIC[i]) == 0)
            generic = 1;
    if (!generic)
        return NULL;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}
