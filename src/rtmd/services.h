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
/* A project a reload adds or removes: every module's project_added (in
 * start order; one that refuses undoes the others with project_removed
 * and says why in err: -1) or project_removed (in reverse order). */
int services_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen);
void services_project_removed(rtmd_server *srv, rtmd_project *p);

/* Every module's lines of /metrics. */
void services_metrics(const rtmd_server *srv, prom_out *out);

#endif
