#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int g_level = FA_INFO;
static _Thread_local unsigned long long t_req;

static const char *const NAMES[] = {"debug", "info", "warn", "error"};

void fa_log_set_level(fa_log_level level)
{
    atomic_store(&g_level, (int)level);
}

int fa_log_enabled(fa_log_level level)
{
    return (int)level >= atomic_load(&g_level);
}

int fa_log_level_parse(const char *name)
{
    for (int i = 0; i < (int)FA_ARRAY_LEN(NAMES); i++)
        if (strcmp(name, NAMES[i]) == 0)
            return i;
    return -1;
}

void fa_log_set_request(unsigned long long req_id)
{
    t_req = req_id;
}

void fa_log_write(fa_log_level level, const char *event, const char *fmt, ...)
{
    char line[1024];
    char ts[40];
    struct timespec now;
    struct tm tm;
    int n;
    va_list ap;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)gmtime_r(&now.tv_sec, &tm);
    (void)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (t_req != 0)
        n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s event=%s req=%llu ", ts,
                     now.tv_nsec / 1000000, NAMES[level], event, t_req);
    else
        n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s event=%s req=- ", ts,
                     now.tv_nsec / 1000000, NAMES[level], event);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 2;
    va_start(ap, fmt);
    (void)vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps concurrent lines whole (stdio locks the stream). */
    size_t len = strlen(line);
    line[len] = '\n';
    line[len + 1] = '\0';
    (void)fputs(line, stderr);
}
