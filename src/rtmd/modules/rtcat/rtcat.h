/* RealTimeCat (the rtcat/ folder): sessions and tokens of the REST v0.4 API, and
 * what the client gate needs of them: a token login (auth.c) and the
 * rights of a connection logged in with a token (strid.c's edge hook). */
#ifndef RTMD_RTCAT_H
#define RTMD_RTCAT_H

#include "methods.h"
#include "server_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTCAT_UUID_LEN 36

/* kickout reasons of connections whose session or token was deleted. */
#define RTCAT_SESSION_DELETED "session_deleted"
#define RTCAT_TOKEN_DELETED "token_deleted"

enum { RTCAT_TOKEN_OK = 0, RTCAT_TOKEN_INVALID, RTCAT_TOKEN_EXPIRED };

/* What a good token grants: its uuid (the login's string id), its
 * session's uuid (the one room it may use) and whether it may send. */
typedef struct rtcat_grant {
    char token[RTCAT_UUID_LEN + 1];
    char session[RTCAT_UUID_LEN + 1];
    bool pub;
} rtcat_grant;

/* True when the project has the REST API (rtcat_apikey and rtcat_secret). */
bool rtcat_enabled(const rtmd_project *p);

/* Checks token[0..len) of project pid: RTCAT_TOKEN_OK with *out filled,
 * RTCAT_TOKEN_INVALID (unknown or deleted) or RTCAT_TOKEN_EXPIRED (the
 * token or its session past expire_in). */
int rtcat_token_check(rtmd_server *srv, int64_t pid, const char *token, size_t len, rtcat_grant *out);

/* On a cluster, a token this node does not hold may be one another node
 * has just made (its record not here yet): reads the token's session and
 * its live tokens from the store into this node's copy, as that record
 * would, on the writer (in order with this node's writes), then calls
 * cb(arg) on the loop. Returns 0 (cb will be called once), or -1 without
 * a cluster, for a malformed uuid or out of memory (cb not called). */
typedef void (*rtcat_fetch_cb)(void *arg);
int rtcat_token_fetch(rtmd_server *srv, int64_t pid, const char *token, size_t len, rtcat_fetch_cb cb, void *arg);

/* The connection has just logged in (pid, uid) with the token of g: from
 * now on its requests are held to the token's rights (rtcat_gate), and
 * deleting the token or its session kicks it. Returns 0, or -1 when out
 * of memory. */
int rtcat_bind(rtmd_server *srv, rtmd_conn *c, int64_t pid, int64_t uid, const rtcat_grant *g);

/* The rights of a token login, checked before a client-gate method runs:
 * true when req may go on (not a token login, or allowed), false once it
 * is answered with 200021 (another room, a sub token sending) or 200020
 * (a method a token login may not call). */
bool rtcat_gate(rtmd_request *req);

#endif
