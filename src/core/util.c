#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fa_file_read(char **out, size_t *len_out, const char *path, size_t max_bytes, fa_error *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    struct stat st;
    size_t len;
    int rc = FA_OK;

    *out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = fa_fail(err, errno == ENOENT ? FA_ENOTFOUND : FA_EINVAL, "cannot open %s: %s", path,
                     strerror(errno));
        goto cleanup;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fa_fail(err, FA_EINVAL, "%s is not a regular file", path);
        goto cleanup;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        rc = fa_fail(err, FA_ETOOBIG, "%s is %lld bytes, over the limit of %zu", path,
                     (long long)st.st_size, max_bytes);
        goto cleanup;
    }
    len = (size_t)st.st_size;
    buf = malloc(len + 1);
    if (buf == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading %s", path);
        goto cleanup;
    }
    if (len > 0 && fread(buf, 1, len, f) != len) {
        rc = fa_fail(err, FA_EINVAL, "short read on %s", path);
        goto cleanup;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    if (len_out != NULL)
        *len_out = len;
cleanup:
    free(buf);
    if (f != NULL)
        (void)fclose(f);
    return rc;
}

int fa_file_write(const char *path, const void *data, size_t len, unsigned mode, int exclusive,
                  fa_error *err)
{
    char tmp[4096];
    int fd = -1;
    int rc = FA_OK;
    const unsigned char *p = data;
    size_t left = len;

    if (exclusive && access(path, F_OK) == 0)
        return fa_fail(err, FA_ECONFLICT, "%s already exists", path);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return fa_fail(err, FA_EINVAL, "path too long: %s", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (fd < 0)
        return fa_fail(err, FA_EINVAL, "cannot create %s: %s", tmp, strerror(errno));
    if (fchmod(fd, (mode_t)mode) != 0) {
        rc = fa_fail(err, FA_EINVAL, "cannot chmod %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = fa_fail(err, FA_EINVAL, "cannot write %s: %s", tmp, strerror(errno));
            goto cleanup;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = fa_fail(err, FA_EINVAL, "cannot sync %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = fa_fail(err, FA_EINVAL, "cannot close %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    /* link() refuses to replace: the exclusive check above races, this does not. */
    if (exclusive) {
        if (link(tmp, path) != 0) {
            rc = fa_fail(err, errno == EEXIST ? FA_ECONFLICT : FA_EINVAL, "cannot create %s: %s",
                         path, strerror(errno));
            goto cleanup;
        }
    } else if (rename(tmp, path) != 0) {
        rc = fa_fail(err, FA_EINVAL, "cannot rename to %s: %s", path, strerror(errno));
        goto cleanup;
    }
cleanup:
    if (fd >= 0)
        (void)close(fd);
    (void)unlink(tmp);
    return rc;
}

int fa_parse_i64(int64_t *out, const char *s)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t')
        return FA_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return FA_EINVAL;
    *out = (int64_t)v;
    return FA_OK;
}

int fa_parse_double(double *out, const char *s)
{
    char *end = NULL;
    double v;

    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t')
        return FA_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return FA_EINVAL;
    *out = v;
    return FA_OK;
}

void fa_hex_encode(char *out, const void *data, size_t n)
{
    static const char DIGITS[] = "0123456789abcdef";
    const unsigned char *p = data;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = DIGITS[p[i] >> 4];
        out[2 * i + 1] = DIGITS[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fa_hex_decode(void *out, size_t n, const char *hex)
{
    unsigned char *p = out;

    if (strlen(hex) != 2 * n)
        return FA_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return FA_EINVAL;
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    return FA_OK;
}

uint64_t fa_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double fa_wall_seconds(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fa_realtime_after(struct timespec *out, double ms)
{
    long ns;

    (void)clock_gettime(CLOCK_REALTIME, out);
    ns = out->tv_nsec + (long)(ms * 1e6);
    out->tv_sec += ns / 1000000000L;
    out->tv_nsec = ns % 1000000000L;
}

int fa_realtime_passed(const struct timespec *t)
{
    struct timespec now;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}
