/* The state of one server loop that every layer above the transport
 * shares: the transport's state (first, so that conn.c sees a server as
 * its rtmd_net), the configuration, the store, the method table, the
 * projects and the service modules' state; and the helpers that read it
 * (a project by id, a module's periodic timer through a graceful stop).
 * server.c builds it; nothing here calls up into dispatch or modules. */
#ifndef RTMD_SERVER_STATE_H
#define RTMD_SERVER_STATE_H

#include "config.h"
#include "conn.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rtmd_http_router;
struct rtmd_methods;
struct rtmd_services;

typedef struct rtmd_project {
    int64_t pid;
    char secret[RTMD_SECRET_MAX];
    rtmd_project_config limits;
    uint32_t nsessions;             /* authenticated connections now */
    /* Removed by a reload (server.c): no longer found by pid, its sessions
     * closed; the slot stays (requests in flight may point at it) and is
     * taken again if the same pid comes back. */
    bool removed;
} rtmd_project;

typedef struct rtmd_server {
    /* First: conn.c sees a server as its transport state (conn_net). */
    rtmd_net net;
    uv_loop_t *loop;
    rtmd_config cfg;
    store *store;
    struct rtmd_methods *methods;      /* FPNN methods of the gates (methods.h) */
    struct rtmd_http_router *http;     /* routes of the HTTP gate (http.h) */

    rtmd_listener listeners[ENDPOINT_COUNT];
    uv_signal_t sighup;             /* reloads the certificate */
    uv_signal_t sigusr1;            /* reopens the log file (log rotation) */
    uv_timer_t tick;
    uv_check_t flusher;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;

    /* RTMD_MAX_PROJECTS slots, never moved (requests and modules keep
     * pointers and indexes); the first nprojects are used, removed ones
     * included. */
    rtmd_project *projects;
    size_t nprojects;
    /* Where SIGHUP reads the configuration again (server.h). */
    int (*config_source)(void *arg, rtmd_config *cfg, char *err, size_t errlen);
    void *config_source_arg;

    /* The service modules' state (module.h), all owned by this loop. */
    struct rtmd_services *svc;

    int stopping;                   /* 0 running, 1 draining, 2 closing */
    uint64_t stop_started_ms;
    uint64_t stop_undelivered;      /* output bytes not yet written, at the last poll */
    uint64_t stop_progress_ms;      /* when that last changed */
    int exit_code;
} rtmd_server;

/* The running project with this pid (not a removed one), or NULL. */
rtmd_project *rtmd_server_project(const rtmd_server *srv, int64_t pid);
/* The project's slot with this pid, removed or not (its counters: the
 * sessions of a removed project end after its removal), or NULL. */
rtmd_project *rtmd_server_project_slot(const rtmd_server *srv, int64_t pid);
/* How many projects run (removed ones not counted). */
size_t rtmd_server_running_projects(const rtmd_server *srv);

/* Periodic timers of service modules (history retention, token expiry).
 * Each tick first calls rtmd_timer_end_on_stop: once the server stops, it
 * closes the timer so that the loop can end (*closed becomes true) and the
 * tick returns at once. At module free, rtmd_timer_release tells whether
 * the module's memory may go: a timer the loop never closed (no graceful
 * stop) is closed then but stays linked by libuv, so its memory must stay. */
bool rtmd_timer_end_on_stop(rtmd_server *srv, uv_timer_t *t, bool *closed);
bool rtmd_timer_release(uv_timer_t *t, bool closed);

#endif
