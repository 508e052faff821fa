/* The rtmd server: its event loop, listeners, the housekeeping tick that
 * watches connections (handshake, login and idle deadlines, keepalive
 * pings), projects, signals and graceful stop. It puts the layers together:
 * the transport (conn.h), method dispatch (methods.c), HTTP (http.c) and
 * the service modules (services.c). */
#ifndef RTMD_SERVER_H
#define RTMD_SERVER_H

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "events.h"
#include "pairmap.h"
#include "fpnn_crypto.h"
#include "store.h"
#include "tls.h"
#include "ws.h"
#include "rtm/fpnn.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>


struct rtmd_methods;






typedef struct rtmd_project {
    int64_t pid;
    char secret[RTMD_SECRET_MAX];
    rtmd_project_config limits;
    uint32_t nsessions;             /* authenticated connections now */
} rtmd_project;

typedef struct rtmd_server {
    /* First: conn.c sees a server as its transport state (conn_net). */
    rtmd_net net;
    uv_loop_t *loop;
    rtmd_config cfg;
    store *store;
    struct rtmd_methods *methods;

    rtmd_listener listeners[ENDPOINT_COUNT];
    uv_signal_t sighup;             /* reloads the certificate */
    uv_timer_t tick;
    uv_check_t flusher;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;


    rtmd_project *projects;
    size_t nprojects;

    /* Service state, all owned by this loop. */
    pairmap users;                  /* (pid, uid) -> rtmd_user, online users */
    struct rtmd_services *svc;      /* tokens, groups, rooms, bans, listeners, ... */

    int stopping;                   /* 0 running, 1 draining, 2 closing */
    uint64_t stop_started_ms;
    uint64_t stop_undelivered;      /* output bytes not yet written, at the last poll */
    uint64_t stop_progress_ms;      /* when that last changed */
    int exit_code;
} rtmd_server;

/* Sets up everything from cfg (store, key, projects, listeners). Returns 0,
 * or -1 with a message in err. */
int rtmd_server_init(rtmd_server *srv, uv_loop_t *loop, const rtmd_config *cfg, char *err, size_t errlen);
/* Prints the listen, project and ready lines on stdout. */
void rtmd_server_print_ready(rtmd_server *srv);
/* Runs the loop until a graceful stop finished; returns the exit code. */
int rtmd_server_run(rtmd_server *srv);
/* Starts a graceful stop (as SIGTERM does). */
void rtmd_server_stop(rtmd_server *srv);
void rtmd_server_free(rtmd_server *srv);

rtmd_project *rtmd_server_project(const rtmd_server *srv, int64_t pid);
/* Monotonic milliseconds (uv_hrtime), for intervals and rate buckets only:
 * never stored or sent, unaffected by changes of the wall clock. */
uint64_t rtmd_monotonic_ms(void);
/* Wall-clock time since 1970, for what is stored or sent: mtimes, expiries,
 * login times. */
int64_t rtmd_unix_ms(void);
int64_t rtmd_unix_seconds(void);

/* Periodic timers of service modules (history retention, token expiry).
 * Each tick first calls rtmd_timer_end_on_stop: once the server stops, it
 * closes the timer so that the loop can end (*closed becomes true) and the
 * tick returns at once. At module free, rtmd_timer_release tells whether
 * the module's memory may go: a timer the loop never closed (no graceful
 * stop) is closed then but stays linked by libuv, so its memory must stay. */
bool rtmd_timer_end_on_stop(rtmd_server *srv, uv_timer_t *t, bool *closed);
bool rtmd_timer_release(uv_timer_t *t, bool closed);



#endif
