/* Lifecycle events of the server: the transport, users.c and messages.c
 * fire them, and the service modules that keep state per connection or
 * per user subscribe (through their descriptor, module.h). The one who
 * fires never names who listens, so the transport calls no service and
 * users.c and messages.c no other module. */
#ifndef RTMD_EVENTS_H
#define RTMD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct rtmd_server;
struct rtmd_conn;
struct rtmd_user;

typedef enum rtmd_event_kind {
    RTMD_EV_CONN_CLOSED,  /* conn: a connection is being torn down */
    RTMD_EV_SESSION_END,  /* conn, pid, uid: an authenticated session ended */
    RTMD_EV_USER_ONLINE,  /* user, pid, uid, ms: the user's first session began */
    RTMD_EV_USER_OFFLINE, /* user, pid, uid, ms: its last session ended (user is freed after) */
    RTMD_EV_MESSAGE,      /* pid, uid (the sender), conv_type, to, packet, len: a stored
                           * message was pushed to its receivers; packet is its push */
    RTMD_EV_USER_KICKED,  /* pid, uid, reason, seq: users.c kicked the user's sessions here;
                           * seq 0: all of them, else the login sequence they were older than */
    RTMD_EV_COUNT
} rtmd_event_kind;

typedef struct rtmd_event {
    rtmd_event_kind kind;
    struct rtmd_conn *conn;
    struct rtmd_user *user;
    int64_t pid, uid;
    uint64_t ms; /* unix milliseconds */
    int conv_type;  /* messages.h CONV_* */
    int64_t to;     /* the receiver's uid, or the gid or rid */
    const uint8_t *packet;
    size_t len;
    const char *reason; /* RTMD_EV_USER_KICKED: the kickout's reason, or NULL */
    uint64_t seq;
} rtmd_event;

typedef void (*rtmd_observer_fn)(struct rtmd_server *srv, const rtmd_event *ev);

typedef struct rtmd_observer {
    rtmd_event_kind kind;
    rtmd_observer_fn fn;
} rtmd_observer;

#define RTMD_OBSERVERS_MAX 16 /* per event kind */

/* The subscriptions, kept in the transport's state (rtmd_net). */
typedef struct rtmd_events {
    rtmd_observer_fn fns[RTMD_EV_COUNT][RTMD_OBSERVERS_MAX];
    uint8_t n[RTMD_EV_COUNT];
} rtmd_events;

/* Adds an observer; they run in the order subscribed. Returns 0, or -1
 * when the kind already has RTMD_OBSERVERS_MAX. */
int events_subscribe(rtmd_events *e, rtmd_event_kind kind, rtmd_observer_fn fn);
/* Runs the observers of ev's kind with srv. */
void events_fire(const rtmd_events *e, struct rtmd_server *srv, const rtmd_event *ev);

#endif
