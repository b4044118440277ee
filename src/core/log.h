/*
 * Logfmt logging to stderr: one line per event with ts, level, event, req.
 * The level is the only mutable global (an atomic); FA_LOG checks it before
 * evaluating its arguments. Any thread may log.
 */
#ifndef FA_CORE_LOG_H
#define FA_CORE_LOG_H

#include "core/compiler.h"

typedef enum fa_log_level {
    FA_DEBUG = 0,
    FA_INFO = 1,
    FA_WARN = 2,
    FA_ERROR = 3,
} fa_log_level;

/* Sets the minimum level written. */
void fa_log_set_level(fa_log_level level);
int fa_log_enabled(fa_log_level level);

/* Parses "debug", "info", "warn" or "error"; returns -1 when unknown. */
int fa_log_level_parse(const char *name);

/* Sets the request id of the calling thread ("-" when 0). */
void fa_log_set_request(unsigned long long req_id);

void fa_log_write(fa_log_level level, const char *event, const char *fmt, ...) FA_PRINTF(3, 4);

#define FA_LOG(level, event, ...)                                                                  \
    do {                                                                                           \
        if (fa_log_enabled(level))                                                                 \
            fa_log_write((level), (event), __VA_ARGS__);                                           \
    } while (0)

#endif
