#include "privacy/clip.h"

#include <math.h>

#include "core/compiler.h"

/*
 * Clipping, Abadi et al. "Deep Learning with Differential Privacy" (CCS
 * 2016), Algorithm 1: g <- g / max(1, ||g||_2 / C); applied per device as in
 * McMahan et al. "Learning Differentially Private Recurrent Language Models"
 * (ICLR 2018), Algorithm 1 (user-level clipping of the model delta).
 *
 * Safety margin. The sum of squares is computed in blocks of
 * FA_CLIP_PIECE = 8 lanes x 8 floats: each lane squares and adds its 8
 * floats in float, then adds that partial to its double accumulator. For
 * non-negative terms each float product has relative error at most
 * u = 2^-24 and a float sum of 8 such terms at most 7u more (Higham,
 * "Accuracy and Stability of Numerical Algorithms", 2nd ed., eq. 4.4);
 * the double sums add at most n 2^-53, below 2^-26 for n < 2^27 floats
 * per lane. So the computed sum of squares is within 8.25u = 2^-20.96 of
 * the true one and the norm within half that, 2^-21.96 (products that
 * underflow lose at most 2^-149 each, far below S^2 >= 1e-12). The factor
 * S / norm is shaded by 2^-20, and each float product f x_i adds at most u
 * more, so the clipped norm stays at or below S (by at least 2^-21) and
 * within 1e-6 of it. The remainder of a vector shorter than a block is
 * squared in double, exactly.
 */
#define SHADE (1.0 - 0x1p-20)

/*
 * The same error bound decides what counts as inside the ball: a norm
 * computed from float blocks may be up to 2^-21.96 below the true one, so
 * only a computed norm at or below S (1 - 2^-21) leaves the vector
 * untouched (its true norm is then below S). A norm summed in double alone
 * (vectors shorter than a block) is exact to 2^-50 and compared with S.
 */
#define INSIDE_BLOCKED (1.0 - 0x1p-21)

/* Floats each lane adds in float before its partial goes to double. */
#define FLOAT_TERMS (FA_CLIP_PIECE / FA_CLIP_LANES)

/* The exact kernel: products and sums in double. */
static void sum_squares_double(double *part, const float *x, size_t n)
{
    size_t i = 0;

    for (; i + FA_CLIP_LANES <= n; i += FA_CLIP_LANES)
        for (size_t l = 0; l < FA_CLIP_LANES; l++)
            part[l] += (double)x[i + l] * (double)x[i + l];
    for (; i < n; i++)
        part[0] += (double)x[i] * (double)x[i];
}

/*
 * The fast kernel: float products and short float sums keep pace with a
 * plain read of memory, which the double kernel does not (it converts
 * every float). On x86-64 it is also compiled for AVX2 and picked at load
 * time; each lane keeps its own order of additions and contraction is off
 * (meson.build), so every clone gives the same bits.
 */
FA_CLONES_AVX2 static void sum_squares(double *part, const float *x, size_t n)
{
    size_t i = 0;

    for (; i + FA_CLIP_PIECE <= n; i += FA_CLIP_PIECE) {
        float f[FA_CLIP_LANES];
        for (size_t l = 0; l < FA_CLIP_LANES; l++)
            f[l] = x[i + l] * x[i + l];
        for (size_t k = 1; k < FLOAT_TERMS; k++)
            for (size_t l = 0; l < FA_CLIP_LANES; l++)
                f[l] += x[i + k * FA_CLIP_LANES + l] * x[i + k * FA_CLIP_LANES + l];
        for (size_t l = 0; l < FA_CLIP_LANES; l++)
            part[l] += (double)f[l];
    }
    sum_squares_double(part, x + i, n - i);
}

void fa_clip_sumsq_init(fa_clip_sumsq *st)
{
    for (size_t l = 0; l < FA_CLIP_LANES; l++)
        st->part[l] = 0.0;
    st->blocked = 0;
}

void fa_clip_sumsq_add(fa_clip_sumsq *st, const float *x, size_t n)
{
    double before[FA_CLIP_LANES];

    for (size_t l = 0; l < FA_CLIP_LANES; l++)
        before[l] = st->part[l];
    sum_squares(st->part, x, n);
    if (n >= FA_CLIP_PIECE)
        st->blocked = 1;
    for (size_t l = 0; l < FA_CLIP_LANES; l++)
        if (!isfinite(st->part[l])) {
            /* A float square overflows above 1.8e19: say "non-finite" only
             * when the input is, so a finite but huge update is clipped. */
            for (size_t k = 0; k < FA_CLIP_LANES; k++)
                st->part[k] = before[k];
            sum_squares_double(st->part, x, n);
            return;
        }
}

int fa_clip_sumsq_finite(const fa_clip_sumsq *st)
{
    /* A float's square is below 2^256 and no vector has 2^768 elements, so
     * a lane cannot overflow: only a NaN or infinite input makes it non-finite. */
    for (size_t l = 0; l < FA_CLIP_LANES; l++)
        if (!isfinite(st->part[l]))
            return 0;
    return 1;
}

/* The lanes' total, in lane order; NaN or Inf when an element was. */
static int sumsq_norm(double *norm_out, const fa_clip_sumsq *st, fa_error *err)
{
    double sum = 0.0;

    *norm_out = 0.0;
    for (size_t l = 0; l < FA_CLIP_LANES; l++)
        sum += st->part[l];
    /* A float squared in double is below 2^256 (see fa_clip_sumsq_add for the
     * float squares), so only NaN or Inf can make this non-finite. */
    if (!isfinite(sum))
        return fa_fail(err, FA_EINVAL, "update has a non-finite value");
    *norm_out = sqrt(sum);
    return FA_OK;
}

int fa_clip_norm(double *norm_out, const float *x, size_t n, fa_error *err)
{
    fa_clip_sumsq st;

    fa_clip_sumsq_init(&st);
    fa_clip_sumsq_add(&st, x, n);
    return sumsq_norm(norm_out, &st, err);
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
    fa_clip_sumsq st;

    fa_clip_sumsq_init(&st);
    fa_clip_sumsq_add(&st, x, n);
    return fa_clip_factor_of_sumsq(factor_out, norm_out, &st, clip_norm, weight, err);
}

int fa_clip_factor_of_sumsq(double *factor_out, double *norm_out, const fa_clip_sumsq *st,
                            double clip_norm, double weight, fa_error *err)
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
    if ((rc = sumsq_norm(&norm, st, err)) < 0)
        return rc;
    if (norm_out != NULL)
        *norm_out = norm;
    /* Within the ball only the weight applies; |fl(x_i w)| <= |x_i| for
     * w <= 1 (rounding is monotone), so the norm stays <= S. Outside it,
     * the factor is shaded by 2^-20 so float rounding of the products
     * cannot push the norm over S. */
    *factor_out = norm <= clip_norm * (st->blocked ? INSIDE_BLOCKED : 1.0)
                      ? weight
                      : weight * (clip_norm / norm) * SHADE;
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
