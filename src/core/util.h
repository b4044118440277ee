/*
 * Small utilities shared by all modules: bounded file reads, strict number
 * parsing, hex encoding and a monotonic clock. Stateless and thread-safe.
 */
#ifndef FA_CORE_UTIL_H
#define FA_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"

/*
 * Reads the whole file at path into a new NUL-terminated buffer owned by the
 * caller (free()). Fails with FA_ENOTFOUND when the file does not exist,
 * FA_ETOOBIG when it is larger than max_bytes, FA_EINVAL on other I/O errors.
 */
int fa_file_read(char **out, size_t *len_out, const char *path, size_t max_bytes,
                 fa_error *err) FA_MUST_CHECK;

/*
 * Writes len bytes to path atomically (temp file + fsync + rename) with the
 * given mode. With exclusive set, fails with FA_ECONFLICT if path exists.
 */
int fa_file_write(const char *path, const void *data, size_t len, unsigned mode, int exclusive,
                  fa_error *err) FA_MUST_CHECK;

/* Strict parsers: the whole string must be consumed; no sign surprises. */
int fa_parse_i64(int64_t *out, const char *s) FA_MUST_CHECK;
int fa_parse_double(double *out, const char *s) FA_MUST_CHECK;

/* Lower-case hex of n bytes into out, which must hold 2n+1 chars. */
void fa_hex_encode(char *out, const void *data, size_t n);
/* Decodes exactly 2n hex chars into n bytes; returns FA_EINVAL on bad input. */
int fa_hex_decode(void *out, size_t n, const char *hex) FA_MUST_CHECK;

/* Monotonic clock in nanoseconds and wall clock in seconds since the epoch. */
uint64_t fa_now_ns(void);
double fa_wall_seconds(void);

/* The wall-clock time ms milliseconds from now (for pthread_cond_timedwait),
 * and whether such a time has passed. */
void fa_realtime_after(struct timespec *out, double ms);
int fa_realtime_passed(const struct timespec *t);

#endif
