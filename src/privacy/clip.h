/*
 * Per-device L2 clipping and bounded weights: what keeps one device's
 * contribution to the round's weighted sum within the clip norm S, the
 * sensitivity the noise is calibrated to. Pure functions on caller-owned
 * vectors; any thread.
 */
#ifndef FA_PRIVACY_CLIP_H
#define FA_PRIVACY_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Independent partial sums of the norm: vectorisable, smaller rounding error. */
#define FA_CLIP_LANES 8
/* Floats per block of the sum of squares (clip.c explains its error bound). */
#define FA_CLIP_PIECE 64

/*
 * The sum of squares of a vector read in pieces, accumulated in double: the
 * same blocks and order of additions as fa_clip_norm, so the same bits, when
 * every piece but the last holds a multiple of FA_CLIP_PIECE floats. Lets a
 * caller read one vector's norm in the same pass as other work.
 */
typedef struct fa_clip_sumsq {
    double part[FA_CLIP_LANES];
    int blocked; /* 1 once a block was summed in float (then within 2^-21) */
} fa_clip_sumsq;

void fa_clip_sumsq_init(fa_clip_sumsq *st);
void fa_clip_sumsq_add(fa_clip_sumsq *st, const float *x, size_t n);

/*
 * 1 while every element added so far was finite, 0 once one was NaN or
 * infinite: a float square that overflows is summed again in double, so
 * only a non-finite input makes the sum non-finite. Lets a decoder check
 * finiteness and form the norm in one pass.
 */
int fa_clip_sumsq_finite(const fa_clip_sumsq *st);

/*
 * fa_clip_factor from a finished sum of squares of x: FA_EINVAL when x had
 * a non-finite element or for a bad clip norm or weight.
 */
int fa_clip_factor_of_sumsq(double *factor_out, double *norm_out, const fa_clip_sumsq *st,
                            double clip_norm, double weight, fa_error *err) FA_MUST_CHECK;

/*
 * L2 norm of x, accumulated in double. FA_EINVAL when an element is NaN or
 * infinite (the norm is then not meaningful).
 */
int fa_clip_norm(double *norm_out, const float *x, size_t n, fa_error *err) FA_MUST_CHECK;

/*
 * Clips x in place to L2 norm at most clip_norm: x <- x * min(1, S / ||x||).
 * A vector already within S is left bit-for-bit unchanged; a longer one is
 * scaled so its norm, as computed in double, is at most S (the factor is
 * shaded by 2^-20 so float rounding cannot push it over). norm_out (may be
 * NULL) receives the norm before clipping. FA_EINVAL for a non-finite
 * element (x untouched) or a clip norm that is not finite and positive.
 */
int fa_clip_l2(double *norm_out, float *x, size_t n, double clip_norm, fa_error *err) FA_MUST_CHECK;

/*
 * Weight of one device: w = trust * min(1, num_samples / sample_cap), in
 * [0, 1]. trust must lie in [0, 1] and may depend only on the device's own
 * update and public state; num_samples >= 0; sample_cap >= 1. FA_EINVAL.
 */
int fa_clip_weight(double *w_out, double trust, int64_t num_samples, int64_t sample_cap,
                   fa_error *err) FA_MUST_CHECK;

/*
 * The factor that clips and weights x without touching it: f = weight when
 * ||x|| <= S, else weight * S / ||x|| shaded by 2^-20, so that
 * ||f x|| <= weight * S <= S also after float rounding of the products.
 * Lets a caller fold f * x into a sum in one more pass over x instead of
 * two. norm_out (may be NULL) gets ||x||. FA_EINVAL as for fa_clip_scale.
 */
int fa_clip_factor(double *factor_out, double *norm_out, const float *x, size_t n, double clip_norm,
                   double weight, fa_error *err) FA_MUST_CHECK;

/*
 * Clip and weight in one pass: x <- x * weight * min(1, S / ||x||), so
 * ||x|| <= weight * S <= S afterwards. With weight 1 this is fa_clip_l2.
 * weight must lie in [0, 1]. FA_EINVAL as for fa_clip_l2.
 */
int fa_clip_scale(double *norm_out, float *x, size_t n, double clip_norm, double weight,
                  fa_error *err) FA_MUST_CHECK;

#endif
