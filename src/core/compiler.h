/*
 * Compiler attributes shared by every module. Header only; no state.
 * FA_MUST_CHECK marks functions whose fa_code result must be looked at.
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

#define FA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
