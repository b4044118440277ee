/*
 * Prometheus metrics of the HTTP API: request counts and latency histograms
 * per route, accepted and rejected updates by error code. C11 atomics only:
 * any thread may record; rendering reads a consistent-enough snapshot.
 */
#ifndef FA_API_METRICS_H
#define FA_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define FA_METRICS_MAX_ROUTES  16
#define FA_METRICS_MAX_REASONS 32

/* Records one finished request of route index route with its status and duration. */
void fa_metrics_request(int route, unsigned status, uint64_t duration_ns);

/* Counts an accepted update, or a rejected one with its reason code. */
void fa_metrics_update_accepted(void);
void fa_metrics_update_rejected(const char *reason);

/* Counts a request answered 429 (rate limited). */
void fa_metrics_rate_limited(void);

/* Counts a request cut off for taking longer than request_max_s. */
void fa_metrics_timed_out(void);

/* A client connection opened (+1) or closed (-1). */
void fa_metrics_connection(int delta);

/* Names the routes (index -> label); called once before the server starts. */
void fa_metrics_set_route_names(const char *const *names, int n);

typedef struct fa_metrics_extra {
    uint64_t rounds_closed;
    uint64_t rounds_abandoned;
    uint64_t rounds_refused;
    uint64_t updates_folded;
    uint64_t partial_vacuums;
    uint64_t group_commits;
    int64_t updates_parked; /* waiting for their commit on a suspended connection */
    double cumulative_epsilon;
    double last_close_seconds;
    double epsilon_budget;
} fa_metrics_extra;

/* Renders the Prometheus text format into a new malloc'd string (NULL when out of memory). */
char *fa_metrics_render(const fa_metrics_extra *extra, size_t *len_out);

#endif
