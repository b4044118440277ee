/*
 * Dense float32 vector operations for the rest of fedagg (aggregation sums,
 * norms, optimizer steps), so that OpenBLAS stays inside the model module.
 * Vectors are caller-owned arrays of n floats. Any thread may call these on
 * data it owns; BLAS's own thread count is process-wide (fa_vec_set_threads).
 */
#ifndef FA_MODEL_VEC_H
#define FA_MODEL_VEC_H

#include <stddef.h>

/* y += a * x. */
void fa_vec_axpy(float *y, float a, const float *x, size_t n);

/* Sum of x[i] * y[i], accumulated in double precision. */
double fa_vec_dot(const float *x, const float *y, size_t n);

/* x *= a. */
void fa_vec_scale(float *x, float a, size_t n);

/* Euclidean norm of x, accumulated in double precision. */
double fa_vec_norm2(const float *x, size_t n);

/* dst = src (the arrays must not overlap). */
void fa_vec_copy(float *dst, const float *src, size_t n);

/* x = 0. */
void fa_vec_zero(float *x, size_t n);

/* 1 when every element is finite (no NaN, no infinity), else 0. */
int fa_vec_all_finite(const float *x, size_t n);

/*
 * Sets the number of threads BLAS uses inside one call (at least 1). Process
 * wide: call it once at start-up, before other threads use the model module.
 */
void fa_vec_set_threads(int threads);

/* The number of threads BLAS uses inside one call. */
int fa_vec_threads(void);

/* The name of the BLAS kernel set in use (e.g. "Haswell"); static storage. */
const char *fa_vec_blas_core(void);

/*
 * When BLAS fell back to a generic kernel set on a CPU it does not know (it
 * then runs several times slower) but the CPU supports AVX-512 or AVX2: the
 * OPENBLAS_CORETYPE value that selects matching kernels ("SkylakeX" or
 * "Haswell"); NULL otherwise. OpenBLAS reads that variable only when it is
 * loaded, so a program applies it through the environment of a new process.
 */
const char *fa_vec_better_coretype(void);

#endif
