/*
 * The HTTP API of fedagg (libmicrohttpd, thread pool + epoll): device
 * endpoints, model downloads, the privacy ledger, health and metrics.
 * Handlers run concurrently; everything they share is immutable after
 * start (config, keys), owned by the request, or behind its owner's lock
 * (the aggregator, the store pool, the snapshot cache).
 */
#ifndef FA_API_SERVER_H
#define FA_API_SERVER_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct fa_server fa_server;
typedef struct fa_store fa_store;
typedef struct fa_aggregator fa_aggregator;
typedef struct fa_keys fa_keys;

typedef struct fa_server_opts {
    const fa_config *cfg; /* borrowed; outlives the server */
    fa_store *store;      /* borrowed; outlives the server */
    fa_aggregator *agg;   /* borrowed; outlives the server */
    const fa_keys *keys;  /* borrowed; outlives the server */
} fa_server_opts;

/*
 * Binds cfg->listen_address:cfg->port and starts serving. FA_EINVAL when
 * the address is bad, FA_EUNAVAIL when the port cannot be bound.
 */
int fa_server_start(fa_server **out, const fa_server_opts *opts, fa_error *err) FA_MUST_CHECK;

/* The bound TCP port (useful with port 0). */
uint16_t fa_server_port(const fa_server *srv);

/*
 * Re-reads what may change without a restart: the device token keys (the
 * JWKS file of auth = jwt). On failure what is in use stays. Any thread.
 */
int fa_server_reload(fa_server *srv, fa_error *err) FA_MUST_CHECK;

/* The operator port serving /metrics (metrics_listen_address), 0 when there is none. */
uint16_t fa_server_metrics_port(const fa_server *srv);

/* Stops accepting, finishes in-flight requests and frees. NULL-safe. */
void fa_server_stop(fa_server *srv);

#endif
