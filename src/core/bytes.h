/*
 * Little-endian encoding of integers and IEEE floats, the byte order of
 * every binary format here (sealed updates, safetensors, optimizer state,
 * the noise generator's words). Header-only; any thread.
 */
#ifndef FA_CORE_BYTES_H
#define FA_CORE_BYTES_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

static inline void fa_bytes_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void fa_bytes_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t fa_bytes_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t fa_bytes_get_u64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline void fa_bytes_put_f32(unsigned char *p, float f)
{
    uint32_t v;

    memcpy(&v, &f, sizeof(v));
    fa_bytes_put_u32(p, v);
}

static inline float fa_bytes_get_f32(const unsigned char *p)
{
    uint32_t v = fa_bytes_get_u32(p);
    float f;

    memcpy(&f, &v, sizeof(f));
    return f;
}

static inline void fa_bytes_put_f64(unsigned char *p, double d)
{
    uint64_t v;

    memcpy(&v, &d, sizeof(v));
    fa_bytes_put_u64(p, v);
}

static inline double fa_bytes_get_f64(const unsigned char *p)
{
    uint64_t v = fa_bytes_get_u64(p);
    double d;

    memcpy(&d, &v, sizeof(d));
    return d;
}

/* n little-endian floats from p into out; a copy on little-endian hosts. */
static inline void fa_bytes_get_f32s(float *out, const unsigned char *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, p, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++)
        out[i] = fa_bytes_get_f32(p + 4 * i);
#endif
}

/* n floats as little-endian bytes at p; a copy on little-endian hosts. */
static inline void fa_bytes_put_f32s(unsigned char *p, const float *in, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, in, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++)
        fa_bytes_put_f32(p + 4 * i, in[i]);
#endif
}

#endif
