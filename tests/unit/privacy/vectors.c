#include "vectors.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/util.h"

#ifndef FA_VECTORS_DIR
#error "FA_VECTORS_DIR must name tests/vectors"
#endif

FILE *fa_vectors_open(const char *name)
{
    char path[4096];
    FILE *f;

    cr_assert_lt(snprintf(path, sizeof(path), "%s/%s", FA_VECTORS_DIR, name), (int)sizeof(path));
    f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    return f;
}

int fa_vectors_next(FILE *f, char *buf, size_t cap)
{
    while (fgets(buf, (int)cap, f) != NULL) {
        size_t n = strlen(buf);
        cr_assert(n + 1 < cap || buf[n - 1] == '\n', "vector line too long");
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        if (n == 0 || buf[0] == '#')
            continue;
        return 1;
    }
    return 0;
}

void fa_vectors_hex(unsigned char *out, size_t n, const char *hex)
{
    cr_assert_eq(fa_hex_decode(out, n, hex), FA_OK, "bad hex in vector: %s", hex);
}

uint64_t fa_testrng_next(fa_testrng *r)
{
    /* Vigna, "An experimental exploration of Marsaglia's xorshift generators" (2016). */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

double fa_testrng_uniform(fa_testrng *r)
{
    return (double)(fa_testrng_next(r) >> 11) * 0x1p-53;
}

double fa_testrng_normal(fa_testrng *r)
{
    const double u = 1.0 - fa_testrng_uniform(r), v = fa_testrng_uniform(r);

    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
