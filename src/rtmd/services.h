/* The list of service modules (services.c) and its life cycle: starting
 * every module, freeing them, and their lines of /metrics. Only the server
 * (server.c, metrics.c) uses it; modules include module.h. */
#ifndef RTMD_SERVICES_H
#define RTMD_SERVICES_H

#include "module.h"

/* Starts every module (after the store is open). Returns 0, or -1 with err. */
int services_init(rtmd_server *srv, char *err, size_t errlen);
/* Frees every module's state; the store may already be closed. */
void services_free(rtmd_server *srv);

/* SIGHUP: every module's reload, in start order; a module that fails is
 * logged and the others still reload. Returns how many failed. */
int services_reload(rtmd_server *srv);

/* Every module's lines of /metrics. */
void services_metrics(const rtmd_server *srv, prom_out *out);

#endif
