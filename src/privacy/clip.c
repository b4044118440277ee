#include "privacy/clip.h"

#include <math.h>

/*
 * Clipping, Abadi et al. "Deep Learning with Differential Privacy" (CCS
 * 2016), Algorithm 1: g <- g / max(1, ||g||_2 / C); applied per device as in
 * McMahan et al. "Learning Differentially Private Recurrent Language Models"
 * (ICLR 2018), Algorithm 1 (user-level clipping of the model delta).
 *
 * Safety margin: each float product x_i * f is rounded with relative error
 * at most 2^-24, and the blocked double sum of squares has relative error
 * far below 2^-21 for any n that fits in memory, so shading the factor by
 * (1 - 2^-20) keeps the clipped norm at or below S, and within 1e-6 of it.
 */
#define SHADE (1.0 - 0x1p-20)

/* Independent partial sums: vectorisable and with a smaller rounding error. */
#define LANES 8

/*
 * On x86-64 the sum of squares is also compiled for AVX2 and picked at load
 * time: each lane keeps its own order of additions and contraction is off
 * (meson.build), so every clone gives the same bits. With it the norm
 * keeps pace with memory, which the fold's throughput depends on.
 */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__)
#define NORM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NORM_CLONES
#endif

NORM_CLONES static double sum_squares(const float *x, size_t n)
{
    double part[LANES] = {0};
    double sum = 0.0;
    size_t i = 0;

    for (; i + LANES <= n; i += LANES)
        for (size_t l = 0; l < LANES; l++)
            part[l] += (double)x[i + l] * (double)x[i + l];
    for (; i < n; i++)
        part[0] += (double)x[i] * (double)x[i];
    for (size_t l = 0; l < LANES; l++)
        sum += part[l];
    return sum;
}

int fa_clip_norm(double *norm_out, const float *x, size_t n, fa_error *err)
{
    double sum;

    *norm_out = 0.0;
    sum = sum_squares(x, n);
    /* A float squared is below 2^256, so only NaN or Inf can make this non-finite. */
    if (!isfinite(sum))
        return fa_fail(err, FA_EINVAL, "update has a non-finite value");
    *norm_out = sqrt(sum);
    return FA_OK;
}

static int check_clip_norm(double clip_norm, fa_error *err)
{
    if (!isfinite(clip_norm) || clip_norm <= 0.0)
        return fa_fail(err, FA_EINVAL, "clip norm %g is not a finite positive number", clip_norm);
    return FA_OK;
}

int fa_clip_factor(double *factor_out, double *norm_out, const float *x, size_t n, double clip_norm,
                   double weight, fa_error *err)
{
    double norm;
    int rc;

    *factor_out = 0.0;
    if (norm_out != NULL)
        *norm_out = 0.0;
    if ((rc = check_clip_norm(clip_norm, err)) < 0)
        return rc;
    if (!(weight >= 0.0 && weight <= 1.0))
        return fa_fail(err, FA_EINVAL, "weight %g is outside [0, 1]", weight);
    if ((rc = fa_clip_norm(&norm, x, n, err)) < 0)
        return rc;
    if (norm_out != NULL)
        *norm_out = norm;
    /* Within the ball only the weight applies; |fl(x_i w)| <= |x_i| for
     * w <= 1 (rounding is monotone), so the norm stays <= S. Outside it,
     * the factor is shaded by 2^-20 so float rounding of the products
     * cannot push the norm over S. */
    *factor_out = norm <= clip_norm ? weight : weight * (clip_norm / norm) * SHADE;
    return FA_OK;
}

int fa_clip_scale(double *norm_out, float *x, size_t n, double clip_norm, double weight,
                  fa_error *err)
{
    double f;
    int rc;

    if ((rc = fa_clip_factor(&f, norm_out, x, n, clip_norm, weight, err)) < 0)
        return rc;
    if (f == 1.0)
        return FA_OK; /* within the ball at weight 1: untouched, bit for bit */
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)x[i] * f);
    return FA_OK;
}

int fa_clip_l2(double *norm_out, float *x, size_t n, double clip_norm, fa_error *err)
{
    return fa_clip_scale(norm_out, x, n, clip_norm, 1.0, err);
}

int fa_clip_weight(double *w_out, double trust, int64_t num_samples, int64_t sample_cap,
                   fa_error *err)
{
    *w_out = 0.0;
    if (!(trust >= 0.0 && trust <= 1.0))
        return fa_fail(err, FA_EINVAL, "trust %g is outside [0, 1]", trust);
    if (num_samples < 0)
        return fa_fail(err, FA_EINVAL, "number of samples %lld is negative",
                       (long long)num_samples);
    if (sample_cap < 1)
        return fa_fail(err, FA_EINVAL, "sample cap %lld is not positive", (long long)sample_cap);
    /* Privacy contract: w = t * min(1, n / n_cap), so 0 <= w <= t <= 1. */
    *w_out = num_samples >= sample_cap ? trust : trust * ((double)num_samples / (double)sample_cap);
    return FA_OK;
}
