#include "api/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"

/* Upper bounds of the latency buckets, in seconds (plus +Inf). */
static const double BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
#define NBUCKETS ((int)FA_ARRAY_LEN(BUCKETS))
#define NCLASSES 5 /* 1xx..5xx */

struct route_stats {
    atomic_uint_fast64_t by_class[NCLASSES];
    atomic_uint_fast64_t buckets[NBUCKETS + 1];
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
};

static struct route_stats g_routes[FA_METRICS_MAX_ROUTES];
static const char *g_route_names[FA_METRICS_MAX_ROUTES];
static int g_nroutes;

static atomic_uint_fast64_t g_accepted;
static atomic_uint_fast64_t g_rate_limited;
static atomic_uint_fast64_t g_timed_out;
static atomic_int_fast64_t g_connections_open;
static atomic_uint_fast64_t g_connections_total;
/* Rejection reasons are a fixed, small vocabulary of static strings: the
 * first thread to see one claims a slot with a compare-and-swap. */
static _Atomic(const char *) g_reason_names[FA_METRICS_MAX_REASONS];
static atomic_uint_fast64_t g_reason_counts[FA_METRICS_MAX_REASONS];

void fa_metrics_set_route_names(const char *const *names, int n)
{
    g_nroutes = n < FA_METRICS_MAX_ROUTES ? n : FA_METRICS_MAX_ROUTES;
    for (int i = 0; i < g_nroutes; i++)
        g_route_names[i] = names[i];
}

void fa_metrics_rate_limited(void)
{
    atomic_fetch_add(&g_rate_limited, 1);
}

void fa_metrics_timed_out(void)
{
    atomic_fetch_add(&g_timed_out, 1);
}

void fa_metrics_connection(int delta)
{
    atomic_fetch_add(&g_connections_open, delta);
    if (delta > 0)
        atomic_fetch_add(&g_connections_total, 1);
}

void fa_metrics_request(int route, unsigned status, uint64_t duration_ns)
{
    struct route_stats *r;
    double secs = (double)duration_ns * 1e-9;
    int b = 0;

    if (route < 0 || route >= FA_METRICS_MAX_ROUTES)
        return;
    r = &g_routes[route];
    unsigned cls = status / 100;
    if (cls >= 1 && cls <= NCLASSES)
        atomic_fetch_add(&r->by_class[cls - 1], 1);
    while (b < NBUCKETS && secs > BUCKETS[b])
        b++;
    atomic_fetch_add(&r->buckets[b], 1);
    atomic_fetch_add(&r->sum_us, duration_ns / 1000);
    atomic_fetch_add(&r->count, 1);
}

void fa_metrics_update_accepted(void)
{
    atomic_fetch_add(&g_accepted, 1);
}

void fa_metrics_update_rejected(const char *reason)
{
    for (int i = 0; i < FA_METRICS_MAX_REASONS; i++) {
        const char *cur = atomic_load(&g_reason_names[i]);
        if (cur == NULL) {
            const char *expected = NULL;
            if (atomic_compare_exchange_strong(&g_reason_names[i], &expected, reason) ||
                strcmp(expected, reason) == 0) {
                atomic_fetch_add(&g_reason_counts[i], 1);
                return;
            }
            continue;
        }
        if (strcmp(cur, reason) == 0) {
            atomic_fetch_add(&g_reason_counts[i], 1);
            return;
        }
    }
}

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *fmt, ...) FA_PRINTF(2, 3);

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

char *fa_metrics_render(const fa_metrics_extra *extra, size_t *len_out)
{
    struct buf b = {malloc(8192), 0, 8192, 0};

    if (b.p == NULL)
        return NULL;
    put(&b, "# HELP fedagg_http_requests_total HTTP requests by route and status class.\n"
            "# TYPE fedagg_http_requests_total counter\n");
    for (int i = 0; i < g_nroutes; i++)
        for (int c = 0; c < NCLASSES; c++)
            put(&b, "fedagg_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                g_route_names[i], c + 1, (unsigned long long)atomic_load(&g_routes[i].by_class[c]));
    put(&b, "# HELP fedagg_http_request_duration_seconds HTTP request latency by route.\n"
            "# TYPE fedagg_http_request_duration_seconds histogram\n");
    for (int i = 0; i < g_nroutes; i++) {
        unsigned long long cum = 0;
        for (int k = 0; k <= NBUCKETS; k++) {
            cum += atomic_load(&g_routes[i].buckets[k]);
            if (k < NBUCKETS)
                put(&b,
                    "fedagg_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    g_route_names[i], BUCKETS[k], cum);
            else
                put(&b,
                    "fedagg_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    g_route_names[i], cum);
        }
        put(&b, "fedagg_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", g_route_names[i],
            (double)atomic_load(&g_routes[i].sum_us) * 1e-6);
        put(&b, "fedagg_http_request_duration_seconds_count{route=\"%s\"} %llu\n", g_route_names[i],
            (unsigned long long)atomic_load(&g_routes[i].count));
    }
    put(&b,
        "# HELP fedagg_rate_limited_total Requests answered 429 by a rate limit.\n"
        "# TYPE fedagg_rate_limited_total counter\n"
        "fedagg_rate_limited_total %llu\n"
        "# HELP fedagg_http_requests_timed_out_total Requests cut off after request_max_s.\n"
        "# TYPE fedagg_http_requests_timed_out_total counter\n"
        "fedagg_http_requests_timed_out_total %llu\n"
        "# HELP fedagg_http_connections_open Client connections open now.\n"
        "# TYPE fedagg_http_connections_open gauge\n"
        "fedagg_http_connections_open %lld\n"
        "# HELP fedagg_http_connections_total Client connections accepted since start.\n"
        "# TYPE fedagg_http_connections_total counter\n"
        "fedagg_http_connections_total %llu\n",
        (unsigned long long)atomic_load(&g_rate_limited),
        (unsigned long long)atomic_load(&g_timed_out), (long long)atomic_load(&g_connections_open),
        (unsigned long long)atomic_load(&g_connections_total));
    put(&b,
        "# HELP fedagg_updates_accepted_total Updates stored and acknowledged with 202.\n"
        "# TYPE fedagg_updates_accepted_total counter\n"
        "fedagg_updates_accepted_total %llu\n",
        (unsigned long long)atomic_load(&g_accepted));
    put(&b, "# HELP fedagg_updates_rejected_total Updates rejected, by error code.\n"
            "# TYPE fedagg_updates_rejected_total counter\n");
    for (int i = 0; i < FA_METRICS_MAX_REASONS; i++) {
        const char *name = atomic_load(&g_reason_names[i]);
        if (name != NULL)
            put(&b, "fedagg_updates_rejected_total{code=\"%s\"} %llu\n", name,
                (unsigned long long)atomic_load(&g_reason_counts[i]));
    }
    if (extra != NULL) {
        put(&b,
            "# HELP fedagg_rounds_total Rounds ended since start, by outcome.\n"
            "# TYPE fedagg_rounds_total counter\n"
            "fedagg_rounds_total{outcome=\"closed\"} %llu\n"
            "fedagg_rounds_total{outcome=\"abandoned\"} %llu\n"
            "fedagg_rounds_total{outcome=\"refused\"} %llu\n"
            "# HELP fedagg_updates_folded_total Updates committed into this node's partial sums.\n"
            "# TYPE fedagg_updates_folded_total counter\n"
            "fedagg_updates_folded_total %llu\n"
            "# HELP fedagg_partial_vacuums_total VACUUMs of partial_sums this node ran.\n"
            "# TYPE fedagg_partial_vacuums_total counter\n"
            "fedagg_partial_vacuums_total %llu\n"
            "# HELP fedagg_group_commits_total Group commits this node ran (each makes a batch of "
            "updates durable).\n"
            "# TYPE fedagg_group_commits_total counter\n"
            "fedagg_group_commits_total %llu\n"
            "# HELP fedagg_updates_parked Opened updates whose connection waits for their group "
            "commit.\n"
            "# TYPE fedagg_updates_parked gauge\n"
            "fedagg_updates_parked %lld\n"
            "# HELP fedagg_privacy_epsilon Cumulative epsilon spent (ledger head).\n"
            "# TYPE fedagg_privacy_epsilon gauge\n"
            "fedagg_privacy_epsilon %.17g\n"
            "# HELP fedagg_privacy_epsilon_budget Configured epsilon budget.\n"
            "# TYPE fedagg_privacy_epsilon_budget gauge\n"
            "fedagg_privacy_epsilon_budget %.17g\n"
            "# HELP fedagg_round_close_seconds Duration of the last round close this process ran.\n"
            "# TYPE fedagg_round_close_seconds gauge\n"
            "fedagg_round_close_seconds %.9g\n",
            (unsigned long long)extra->rounds_closed, (unsigned long long)extra->rounds_abandoned,
            (unsigned long long)extra->rounds_refused, (unsigned long long)extra->updates_folded,
            (unsigned long long)extra->partial_vacuums, (unsigned long long)extra->group_commits,
            (long long)extra->updates_parked, extra->cumulative_epsilon, extra->epsilon_budget,
            extra->last_close_seconds);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len_out = b.len;
    return b.p;
}
