/*
 * Test support: reading the known-answer files of tests/vectors/ (data
 * lines; '#' lines are comments naming the independent method) and a small
 * deterministic generator for test inputs. Each test process uses its own.
 */
#ifndef FA_TESTS_PRIVACY_VECTORS_H
#define FA_TESTS_PRIVACY_VECTORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Opens tests/vectors/<name>; fails the current test when it cannot. */
FILE *fa_vectors_open(const char *name);

/* Reads the next data line into buf (newline stripped); 0 at end of file. */
int fa_vectors_next(FILE *f, char *buf, size_t cap);

/* Decodes 2n hex chars into out; fails the test on bad input. */
void fa_vectors_hex(unsigned char *out, size_t n, const char *hex);

/* xorshift64* stream for test inputs (not for anything secret). */
typedef struct fa_testrng {
    uint64_t s;
} fa_testrng;

uint64_t fa_testrng_next(fa_testrng *r);
double fa_testrng_uniform(fa_testrng *r); /* [0, 1) */
double fa_testrng_normal(fa_testrng *r);  /* N(0, 1) via Box-Muller, libm */

#endif
