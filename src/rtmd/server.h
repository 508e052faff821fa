/* The rtmd server's life: it puts the layers together from the
 * configuration (store, encryption key, projects, method table, service
 * modules, listeners), runs the loop with its housekeeping tick, and stops
 * gracefully on SIGTERM/SIGINT. Only main.c uses it. */
#ifndef RTMD_SERVER_H
#define RTMD_SERVER_H

#include "server_state.h"

/* Sets up everything from cfg (store, key, projects, listeners). Returns 0,
 * or -1 with a message in err. */
int rtmd_server_init(rtmd_server *srv, uv_loop_t *loop, const rtmd_config *cfg, char *err, size_t errlen);
/* Where SIGHUP reads the configuration again: fn fills a checked
 * configuration (0) or says why not in err (-1). Without it SIGHUP reloads
 * only the TLS files and the modules' files. */
typedef int (*rtmd_config_source_fn)(void *arg, rtmd_config *cfg, char *err, size_t errlen);
void rtmd_server_reload_from(rtmd_server *srv, rtmd_config_source_fn fn, void *arg);
/* Prints the listen, project and ready lines on stdout. */
void rtmd_server_print_ready(rtmd_server *srv);
/* Runs the loop until a graceful stop finished; returns the exit code. */
int rtmd_server_run(rtmd_server *srv);
/* Starts a graceful stop (as SIGTERM does). */
void rtmd_server_stop(rtmd_server *srv);
void rtmd_server_free(rtmd_server *srv);

#endif
