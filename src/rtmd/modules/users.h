/* Who is online: the users of each project with their authenticated
 * client-gate connections (sessions), presence, per-connection attributes,
 * kicking users out, and pushing an encoded quest to every connection of a
 * user. A user exists here while at least one of its connections is
 * authenticated; modules that keep per-user state key it by (pid, uid)
 * and drop it on RTMD_EV_USER_OFFLINE. */
#ifndef RTMD_USERS_H
#define RTMD_USERS_H

#include "server_state.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

/* Longest key of a session attribute, in bytes. The other attribute limits
 * are per project (max_session_attrs, max_session_attrs_bytes, and
 * max_attrs_bytes for one value). */
#define RTMD_SESSION_ATTR_KEY_MAX 128
/* Longest business id (auth's businessid), in bytes. */
#define RTMD_BUSINESS_ID_MAX 128

typedef struct rtmd_session rtmd_session;

/* Why a user went offline (rtmd_user.gone, read on RTMD_EV_USER_OFFLINE);
 * the values of the vendor's USER_OFFLINE_REASON. */
enum {
    USERS_GONE_QUIT = 0,    /* its last session ended with `bye` */
    USERS_GONE_DROPPED = 1, /* its last connection closed without `bye` */
    USERS_GONE_KICKED = 3,  /* users_kickout (the app server's kickout, a newer login, a ban) */
};

typedef struct rtmd_user {
    int64_t pid, uid;
    rtmd_session *sessions;     /* this user's authenticated connections */
    unsigned nsessions;
    uint64_t online_since_ms;
    int gone;                   /* USERS_GONE_*: set before RTMD_EV_USER_OFFLINE */
    /* While RTMD_EV_USER_ONLINE and RTMD_EV_USER_OFFLINE run: the business
     * id of the session whose login or logout made the event, or NULL. */
    const char *event_business_id;
} rtmd_user;

typedef struct rtmd_session_attr {
    char *key, *value;  /* NUL-terminated copies */
    size_t value_len;   /* bytes of value (a bin value may hold NULs) */
} rtmd_session_attr;

struct rtmd_session {
    rtmd_conn *conn;
    rtmd_user *user;
    rtmd_session *prev, *next;  /* the user's sessions */
    uint64_t login_ms;           /* unix milliseconds */
    char lang[16];
    rtmd_session_attr *attrs;    /* grown on demand: most sessions have none */
    unsigned nattrs;
    size_t attrs_bytes;          /* key and value bytes of all attrs */
    /* A string-id session (RTS-style login): its user's string id, NUL
     * terminated (identity.h), so that answers and pushes to it name users
     * by strings. NULL for a number-id session. */
    char *string_id;
    bool said_bye;               /* `bye` was answered: the close is a quit */
    /* The business id the RTS SDK gave at login (auth's businessid), NUL
     * terminated, or NULL when none or empty. */
    char *business_id;
    /* Single-login projects in a cluster: the login's sequence from Redis
     * (cluster.h cluster_claim_login), USERS_SEQ_PENDING while it is
     * asked, 0 when none (no cluster, Redis away, multi-login). */
    uint64_t login_seq;
};
#define USERS_SEQ_PENDING UINT64_MAX

/* The session of a client-gate connection (the caller users.c, as the
 * gates' authorizer, keeps on it), or NULL before login. */
static inline rtmd_session *users_session(const rtmd_conn *c)
{
    return c->caller;
}

/* Online users, of every project. */
size_t users_count(rtmd_server *srv);
/* Writes the uids of the project's online users into out (at most cap);
 * returns how many. */
size_t users_of_project(rtmd_server *srv, int64_t pid, int64_t *out, size_t cap);

/* The online user, or NULL. */
rtmd_user *users_get(rtmd_server *srv, int64_t pid, int64_t uid);
bool users_online(rtmd_server *srv, int64_t pid, int64_t uid);
/* The user's most recent authenticated connection, or NULL when offline. */
rtmd_conn *users_newest_conn(rtmd_server *srv, int64_t pid, int64_t uid);

/* Makes the connection an authenticated session of (pid, uid). Returns the
 * session, or NULL when out of memory. */
rtmd_session *users_login(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid);
/* The same for a string-id session: sid[0..len) is the user's string id
 * (uid is its mapping), kept on the session before RTMD_EV_USER_ONLINE. */
rtmd_session *users_login_named(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid, const char *sid,
                                size_t len);
/* The same with the session's business id bid[0..blen) (blen 0: none). */
rtmd_session *users_login_business(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid, const char *sid,
                                   size_t len, const char *bid, size_t blen);
/* Ends the connection's session, if any (the connection is closing). The
 * user goes offline with its last session (gone: USERS_GONE_QUIT after
 * users_said_bye, else USERS_GONE_DROPPED). */
void users_logout(rtmd_conn *conn);
/* The connection answered `bye`: when its session ends the user quit. */
void users_said_bye(rtmd_conn *conn);

/* Sends a `kickout {reason: "kicked"}` push (oneway, as the SDKs do not
 * answer it) to every connection of the user except `except`, then closes
 * them; when none is left the user goes offline as USERS_GONE_KICKED.
 * Returns how many connections were kicked. */
unsigned users_kickout(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except);
/* The same with the push's `reason` (NULL: none): USERS_DUPLICATE_LOGIN
 * when a newer login of the user on a single-login project (multi_login
 * 0) logs the older connections out, USERS_KICKED when the app server
 * did (server-gate kickout, a project blacklisting); users_kickout says
 * USERS_KICKED. The RTM SDKs read only the method and ignore the field; the
 * RTS SDK reports a duplicate login from it. */
#define USERS_DUPLICATE_LOGIN "duplicate_login"
#define USERS_KICKED "kicked"
unsigned users_kickout_why(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason);
/* users_kickout_why kicks this node's sessions and fires
 * RTMD_EV_USER_KICKED (seq 0), on which the cluster kicks the user on the
 * other nodes too. users_kickout_older kicks this node's sessions other
 * than except whose login_seq is below seq (0 included, pending not) and
 * fires the event with seq: the other nodes kick their older logins.
 * users_kick_local kicks only here and fires nothing: with below 0 every
 * session but except, else those with a login_seq below it (pending
 * ones kept). All return how many connections were kicked here. */
unsigned users_kickout_older(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason,
                             uint64_t seq);
unsigned users_kick_local(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason,
                          uint64_t below);

/* Sends an encoded quest packet (see push.h) to every connection of the
 * user; twoway packets get a fresh seq on each connection. Returns how
 * many connections it was queued to. */
unsigned users_push(rtmd_server *srv, int64_t pid, int64_t uid, const uint8_t *packet, size_t len);

/* Session attributes: a msgpack map of str (or bin) keys to str (or bin)
 * values, as addattrs and auth carry them. session_attrs_check tells
 * whether setting `attrs` on s (NULL: a session not made yet) keeps it
 * within the project's limits, all pairs or none: returns 0, or the code
 * to answer with *ex set: 10010 a key or value of another type, 200032
 * more attributes than max_session_attrs, 200030 a key over
 * RTMD_SESSION_ATTR_KEY_MAX, a value over max_attrs_bytes, or keys and
 * values of the session over max_session_attrs_bytes. A key given again
 * replaces its value. */
int session_attrs_check(const rtmd_session *s, const msgpack_object *attrs, const rtmd_project_config *lim,
                        const char **ex);
/* Sets the pairs of a checked map. Returns 0, or -1 when out of memory. */
int session_attrs_set(rtmd_session *s, const msgpack_object *attrs);

/* users.c fires RTMD_EV_USER_ONLINE, RTMD_EV_SESSION_END and
 * RTMD_EV_USER_OFFLINE (events.h) and ends a session on
 * RTMD_EV_CONN_CLOSED; modules that keep per-user state observe them. */

#endif
