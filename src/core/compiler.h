/*
 * Compiler attributes shared by every module. Header only; no state.
 * FA_MUST_CHECK marks functions whose fa_code result must be looked at.
 * FA_CLONES_AVX2 compiles a hot loop a second time for AVX2, picked at load
 * time on CPUs that have it (x86-64 glibc only; elsewhere a no-op). Without
 * FMA in either clone and with per-lane addition orders fixed by the source,
 * both clones give the same bits.
 */
#ifndef FA_CORE_COMPILER_H
#define FA_CORE_COMPILER_H

#if defined(__GNUC__) || defined(__clang__)
#define FA_MUST_CHECK   __attribute__((warn_unused_result))
#define FA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define FA_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define FA_UNUSED       __attribute__((unused))
#else
#define FA_MUST_CHECK
#define FA_PRINTF(a, b)
#define FA_NONNULL(...)
#define FA_UNUSED
#endif

#if defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) &&                               \
    (defined(__GNUC__) || defined(__clang__))
#define FA_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define FA_CLONES_AVX2
#endif

#define FA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
