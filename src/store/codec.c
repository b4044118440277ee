/*
 * Binary encoding: statement parameters in network byte order, and the
 * getters that read binary results back (the store sends and receives
 * binary everywhere, so no number goes through text).
 */
#include "store/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ parameters */

void fa_store__param_i64(fa_store_params *p, int64_t x)
{
    fa_store__put_i64(p->num[p->n], x);
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 8;
}

void fa_store__param_f64(fa_store_params *p, double x)
{
    fa_store__put_f64(p->num[p->n], x);
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 8;
}

void fa_store__param_bool(fa_store_params *p, int x)
{
    p->num[p->n][0] = x != 0;
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 1;
}

/* NULL data becomes SQL NULL. */
void fa_store__param_bytes(fa_store_params *p, const void *data, size_t len)
{
    p->v[p->n] = data;
    p->len[p->n++] = (int)len;
}

void fa_store__param_text(fa_store_params *p, const char *s)
{
    fa_store__param_bytes(p, s, s != NULL ? strlen(s) : 0);
}

/* ------------------------------------------------------- binary encoding */

void fa_store__put_i64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

void fa_store__put_f64(unsigned char out[8], double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    fa_store__put_i64(out, (int64_t)u);
}

static uint64_t get_u64(const PGresult *res, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    uint64_t u = 0;

    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return u;
}

int64_t fa_store__get_i64(const PGresult *res, int row, int col)
{
    return (int64_t)get_u64(res, row, col);
}

int32_t fa_store__get_i32(const PGresult *res, int row, int col)
{
    uint32_t u;

    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 4)
        return 0;
    memcpy(&u, PQgetvalue(res, row, col), 4);
    return (int32_t)ntohl(u);
}

double fa_store__get_f64(const PGresult *res, int row, int col)
{
    uint64_t u = get_u64(res, row, col);
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

int fa_store__get_fixed(void *out, size_t n, const PGresult *res, int row, int col, fa_error *err)
{
    if (PQgetisnull(res, row, col) || (size_t)PQgetlength(res, row, col) != n)
        return fa_fail(err, FA_EINTERNAL, "stored column %s has %d bytes, expected %zu",
                       PQfname(res, col), PQgetlength(res, row, col), n);
    memcpy(out, PQgetvalue(res, row, col), n);
    return FA_OK;
}

int fa_store__get_dup(unsigned char **out, size_t *len_out, const PGresult *res, int row, int col,
                      fa_error *err)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    unsigned char *p = malloc(n + 1);

    *out = NULL;
    if (p == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory reading %s", PQfname(res, col));
    memcpy(p, PQgetvalue(res, row, col), n);
    p[n] = '\0';
    *out = p;
    if (len_out != NULL)
        *len_out = n;
    return FA_OK;
}

int fa_store__get_text(char *out, size_t cap, const PGresult *res, int row, int col, fa_error *err)
{
    size_t n = (size_t)PQgetlength(res, row, col);

    if (n >= cap)
        return fa_fail(err, FA_EINTERNAL, "stored column %s is longer than %zu bytes",
                       PQfname(res, col), cap - 1);
    memcpy(out, PQgetvalue(res, row, col), n);
    out[n] = '\0';
    return FA_OK;
}
