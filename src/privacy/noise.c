#include "privacy/noise.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/bytes.h"
#include "privacy/crypto.h"

/*
 * Construction (documented byte for byte in docs/privacy.md):
 *
 *  - Keystream: ChaCha20 with a zero 64-bit nonce and a 64-bit block counter
 *    from 0 (fa_crypto_stream), keyed by 32 bytes from randombytes_buf(), or
 *    by the seed when seeded.
 *  - Groups of FA_NOISE_GROUP = 256 coordinates. A group takes 4 passes of
 *    256 uniforms (8 bytes each, little endian): 8192 bytes = 128 blocks.
 *  - In pass p, pair i uses w1 = word[256p + 2i] and w2 = word[256p + 2i + 1]:
 *      u = 1 - (w1 >> 12) 2^-52 in (0, 1],  v = (w2 >> 12) 2^-52 in [0, 1),
 *      r = sqrt(-2 ln u)   (Box & Muller 1958),
 *      y[2i] = r cos(2 pi v),  y[2i+1] = r sin(2 pi v).
 *  - Each coordinate is z = (y_0 + y_1 + y_2 + y_3) / 2, the four passes'
 *    samples, which is N(0, 1).
 *
 * Why four: Holohan & Braghin, "Secure Random Sampling in Differential
 * Privacy", ESORICS 2021 (arXiv:2107.10138), Sec. 5.1, show that a single
 * floating-point Gaussian sample can be inverted to the uniforms behind it,
 * which tells neighbouring inputs apart, and that the normalised sum of 2n
 * samples, (1/sqrt(2n)) sum_{i=1}^{2n} Y_i with Y_i ~ N(0, 1), raises the cost
 * of that inversion to about 2^(p (2n - 1)) for p-bit uniforms. n = 2 (four
 * samples) is also Opacus's secure mode; with p = 52 here that is about
 * 2^156. Box-Muller shares its uniforms between the two outputs of a pair,
 * so the four samples of one coordinate come from four different pairs (one
 * per pass), never from the two halves of one pair.
 *
 * ln and sin/cos are the kernels below rather than libm: written so that
 * compilers vectorise them, with the reduction of 2 pi v done exactly (v is
 * a dyadic fraction), and with constant work per sample (no branch or loop
 * depends on the random values). The module builds with -ffp-contract=off,
 * so a seed gives the same bits on every IEEE-754 platform.
 */

#define GROUP        FA_NOISE_GROUP
#define PAIRS        (GROUP / 2)
#define PASSES       4
#define WORD_BYTES   8
#define GROUP_BYTES  (PASSES * GROUP * WORD_BYTES)
#define GROUP_BLOCKS (GROUP_BYTES / FA_CRYPTO_STREAM_BLOCK)

#define LN2       0.69314718055994530942
#define HALF_PI   1.57079632679489661923
#define ONE_BITS  0x3FF0000000000000ull /* bits of 1.0 */
#define MANT_MASK 0x000FFFFFFFFFFFFFull
#define SQRT2     1.41421356237309504880

/*
 * The whole sampler, scratch included, lives in guarded memory: keystream,
 * uniforms and samples never sit on the stack, and fa_noise_free wipes them.
 */
struct fa_noise {
    fa_crypto_stream *cs;              /* ChaCha20 keystream, owned */
    unsigned char stream[GROUP_BYTES]; /* keystream of the current group */
    double u[PAIRS], v[PAIRS];         /* uniforms of one pass */
    double r[PAIRS], s[PAIRS], c[PAIRS];
    double z[GROUP]; /* the current group's N(0, 1) samples */
    int seeded;      /* 1: keyed from a caller's seed */
};

/* ------------------------------------------------------------- kernels */

/* Bit casts through a union (defined in C; compilers vectorise it, unlike memcpy). */
typedef union bits64 {
    double d;
    uint64_t u;
} bits64;

static inline double from_bits(uint64_t bits)
{
    const bits64 x = {.u = bits};

    return x.d;
}

static inline uint64_t to_bits(double d)
{
    const bits64 x = {.d = d};

    return x.u;
}

/*
 * Natural log of u in [2^-52, 1] (normal, positive). u = m 2^e with m in
 * [sqrt(1/2), sqrt(2)); ln m = 2 atanh(f), f = (m-1)/(m+1), |f| <= 0.1716,
 * by its Taylor series through f^23 (next term < 1e-17 relative). The
 * exponent becomes a double by the 2^52 trick (no integer conversion, so
 * the loop vectorises).
 */
static inline double ln_unit(double u)
{
    const uint64_t bits = to_bits(u);
    const double m1 = from_bits((bits & MANT_MASK) | ONE_BITS); /* [1, 2) */
    const double e1 = from_bits(0x4330000000000000ull | (bits >> 52)) - (0x1p52 + 1023.0);
    const double half = 0.5 * m1, e1p = e1 + 1.0;
    /* m1 > sqrt(2): use m1/2 and e + 1. Selects between values already
     * computed, so the compiler if-converts and vectorises the loop. */
    const int up = m1 > SQRT2;
    const double m = up ? half : m1;
    const double e = up ? e1p : e1;
    double f, f2, p;

    f = (m - 1.0) / (m + 1.0);
    f2 = f * f;
    p = 1.0 / 23.0;
    p = p * f2 + 1.0 / 21.0;
    p = p * f2 + 1.0 / 19.0;
    p = p * f2 + 1.0 / 17.0;
    p = p * f2 + 1.0 / 15.0;
    p = p * f2 + 1.0 / 13.0;
    p = p * f2 + 1.0 / 11.0;
    p = p * f2 + 1.0 / 9.0;
    p = p * f2 + 1.0 / 7.0;
    p = p * f2 + 1.0 / 5.0;
    p = p * f2 + 1.0 / 3.0;
    return e * LN2 + (2.0 * f + 2.0 * f * f2 * p);
}

/*
 * sin and cos of 2 pi v for v in [0, 1). With t = 4v, k = round(t) and
 * f = t - k in [-1/2, 1/2] (exact), 2 pi v = k pi/2 + theta, theta = f pi/2,
 * |theta| <= pi/4, where the Taylor series through theta^17 (sin) and
 * theta^18 (cos) are accurate to below 1e-19. The quadrant k mod 4 then
 * swaps and negates.
 */
static inline void sincos_2pi(double v, double *s_out, double *c_out)
{
    const double t = 4.0 * v;
    const int k = (int)(t + 0.5);
    const double th = (t - (double)k) * HALF_PI;
    const double t2 = th * th;
    double s, c, ps, pc;

    ps = -1.0 / 355687428096000.0; /* -1/17! */
    ps = ps * t2 + 1.0 / 1307674368000.0;
    ps = ps * t2 - 1.0 / 6227020800.0;
    ps = ps * t2 + 1.0 / 39916800.0;
    ps = ps * t2 - 1.0 / 362880.0;
    ps = ps * t2 + 1.0 / 5040.0;
    ps = ps * t2 - 1.0 / 120.0;
    ps = ps * t2 + 1.0 / 6.0;
    s = th - th * t2 * ps;
    pc = 1.0 / 6402373705728000.0; /* 1/18! */
    pc = pc * t2 - 1.0 / 20922789888000.0;
    pc = pc * t2 + 1.0 / 87178291200.0;
    pc = pc * t2 - 1.0 / 479001600.0;
    pc = pc * t2 + 1.0 / 3628800.0;
    pc = pc * t2 - 1.0 / 40320.0;
    pc = pc * t2 + 1.0 / 720.0;
    pc = pc * t2 - 1.0 / 24.0;
    pc = pc * t2 + 0.5;
    c = 1.0 - t2 * pc;
    {
        const int q = k & 3;
        const double sin_v = (q & 1) ? c : s;
        const double cos_v = (q & 1) ? s : c;
        *s_out = (q & 2) ? -sin_v : sin_v;
        *c_out = ((q + 1) & 2) ? -cos_v : cos_v;
    }
}

/*
 * On x86-64 the pass is also compiled for AVX2 and picked at load time; the
 * operations and their order are the same, so the results are bit-identical.
 */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && !defined(FA_NOISE_NO_CLONES)
#define PASS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PASS_CLONES
#endif

/* One Box-Muller pass: adds 256 N(0, 1) samples from 2048 keystream bytes into nz->z. */
PASS_CLONES static void box_muller_pass(fa_noise *nz, const unsigned char *words)
{
    double *restrict u = nz->u, *restrict v = nz->v, *restrict r = nz->r;
    double *restrict s = nz->s, *restrict c = nz->c, *restrict z = nz->z;

    /* 52 random bits as the mantissa of a double in [1, 2): exact, no conversion. */
    for (size_t i = 0; i < PAIRS; i++) {
        u[i] = 2.0 - from_bits(ONE_BITS | (fa_bytes_get_u64(words + 16 * i) >> 12));
        v[i] = from_bits(ONE_BITS | (fa_bytes_get_u64(words + 16 * i + 8) >> 12)) - 1.0;
    }
    for (size_t i = 0; i < PAIRS; i++)
        r[i] = sqrt(-2.0 * ln_unit(u[i]));
    for (size_t i = 0; i < PAIRS; i++)
        sincos_2pi(v[i], &s[i], &c[i]);
    for (size_t i = 0; i < PAIRS; i++) {
        z[2 * i] += r[i] * c[i];
        z[2 * i + 1] += r[i] * s[i];
    }
}

/* Draws the next group into nz->z: GROUP independent N(0, 1) samples. */
static int next_group(fa_noise *nz, fa_error *err)
{
    int rc;

    if ((rc = fa_crypto_stream_read(nz->cs, nz->stream, GROUP_BYTES, err)) < 0)
        return rc;
    memset(nz->z, 0, sizeof(nz->z));
    for (size_t p = 0; p < PASSES; p++)
        box_muller_pass(nz, nz->stream + p * GROUP * WORD_BYTES);
    for (size_t i = 0; i < GROUP; i++)
        nz->z[i] *= 0.5; /* (y0 + y1 + y2 + y3) / sqrt(4) */
    return FA_OK;
}

/* ------------------------------------------------------------ lifecycle */

static int noise_new(fa_noise **out, const unsigned char key[FA_CRYPTO_STREAM_KEY_BYTES],
                     int seeded, fa_error *err)
{
    fa_noise *nz = NULL;
    int rc;

    *out = NULL;
    nz = fa_crypto_secure_alloc(sizeof(*nz));
    if (nz == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory for the noise sampler");
    memset(nz, 0, sizeof(*nz));
    nz->seeded = seeded;
    if ((rc = fa_crypto_stream_new(&nz->cs, key, err)) < 0)
        goto cleanup;
    *out = nz;
    nz = NULL;
cleanup:
    fa_noise_free(nz);
    return rc;
}

int fa_noise_new(fa_noise **out, fa_error *err)
{
    unsigned char key[FA_CRYPTO_STREAM_KEY_BYTES];
    int rc;

    fa_crypto_random(key, sizeof(key));
    rc = noise_new(out, key, 0, err);
    fa_crypto_wipe(key, sizeof(key));
    return rc;
}

int fa_noise_new_seeded(fa_noise **out, const unsigned char seed[FA_NOISE_SEED_BYTES],
                        fa_error *err)
{
    return noise_new(out, seed, 1, err);
}

void fa_noise_free(fa_noise *nz)
{
    if (nz == NULL)
        return;
    fa_crypto_stream_free(nz->cs);
    fa_crypto_secure_free(nz); /* wipes keystream and samples */
}

int fa_noise_seeded(const fa_noise *nz)
{
    return nz->seeded;
}

/* ------------------------------------------------------------- drawing */

int fa_noise_standard(fa_noise *nz, double *out, size_t n, fa_error *err)
{
    int rc;

    for (size_t at = 0; at < n; at += GROUP) {
        const size_t m = n - at < GROUP ? n - at : GROUP;
        if ((rc = next_group(nz, err)) < 0)
            return rc;
        memcpy(out + at, nz->z, m * sizeof(nz->z[0]));
    }
    return FA_OK;
}

static int check_stddev(double stddev, fa_error *err)
{
    if (!isfinite(stddev) || stddev < 0.0)
        return fa_fail(err, FA_EINVAL, "noise stddev %g is not a finite non-negative number",
                       stddev);
    return FA_OK;
}

int fa_noise_add_f32(fa_noise *nz, float *x, size_t n, double stddev, fa_error *err)
{
    int rc;

    if ((rc = check_stddev(stddev, err)) < 0)
        return rc;
    for (size_t at = 0; at < n; at += GROUP) {
        const size_t m = n - at < GROUP ? n - at : GROUP;
        float *restrict xs;
        const double *restrict z;

        if ((rc = next_group(nz, err)) < 0)
            return rc;
        xs = x + at;
        z = nz->z;
        for (size_t i = 0; i < m; i++)
            xs[i] = (float)((double)xs[i] + stddev * z[i]);
    }
    return FA_OK;
}

int fa_noise_add_f64(fa_noise *nz, double *x, size_t n, double stddev, fa_error *err)
{
    int rc;

    if ((rc = check_stddev(stddev, err)) < 0)
        return rc;
    for (size_t at = 0; at < n; at += GROUP) {
        const size_t m = n - at < GROUP ? n - at : GROUP;
        double *restrict xs;
        const double *restrict z;

        if ((rc = next_group(nz, err)) < 0)
            return rc;
        xs = x + at;
        z = nz->z;
        for (size_t i = 0; i < m; i++)
            xs[i] += stddev * z[i];
    }
    return FA_OK;
}
