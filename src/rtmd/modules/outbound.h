/* Outgoing HTTP POSTs of rtmd (P2Server now, webhooks later): libcurl's
 * multi interface driven by the server's libuv loop, so that a slow or
 * silent app server never blocks the loop. Every POST is bounded: a
 * timeout, a count in flight per project and per user (refused at once
 * when over), a request body cap and a reply body cap; redirects are never
 * followed, only http and https are spoken and proxies of the environment
 * are ignored.
 *
 * Where rtmd may connect is decided by an allowlist the operator writes
 * (outbound_allowlist): a URL is parsed once with curl's URL API, compared
 * part by part with the list, and the same parse is what curl connects to.
 * A URL outside the list is refused before any connection. */
#ifndef RTMD_OUTBOUND_H
#define RTMD_OUTBOUND_H

#include "server_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOUND_MAX_URL 2048                /* bytes of a URL, in the list or asked for */
#define OUTBOUND_MAX_REQUEST_BODY (512 * 1024) /* 64 KiB of control characters is 384 KiB as JSON */
#define OUTBOUND_MAX_REPLY_BODY (64 * 1024)

/* How a POST ended. */
typedef enum outbound_result {
    OUTBOUND_OK = 0,          /* the server answered: status and body */
    OUTBOUND_TIMEOUT,         /* no complete answer within the timeout */
    OUTBOUND_REFUSED,         /* the server's host refused the connection */
    OUTBOUND_CONNECT_FAILED,  /* the name did not resolve, or no route, or TLS failed */
    OUTBOUND_TOO_LARGE,       /* the reply body is over OUTBOUND_MAX_REPLY_BODY */
    OUTBOUND_FAILED,          /* anything else (a broken reply, a closed link) */
} outbound_result;

typedef struct outbound_reply {
    outbound_result result;
    long status;              /* HTTP status when OUTBOUND_OK */
    const char *body;         /* the reply body (OUTBOUND_OK), valid during the callback */
    size_t len;
    const char *error;        /* a short text for the other results */
} outbound_reply;

/* Called once per POST that was not cancelled, on the loop. */
typedef void (*outbound_done_fn)(void *arg, const outbound_reply *r);

/* Refusals of outbound_post, before any connection. */
enum {
    OUTBOUND_E_PROJECT_BUSY = -1, /* the project has max_project POSTs in flight */
    OUTBOUND_E_USER_BUSY = -2,    /* the user has max_user POSTs in flight */
    OUTBOUND_E_NOT_ALLOWED = -3,  /* the URL is not in the allowlist (or is malformed) */
    OUTBOUND_E_TOO_LARGE = -4,    /* the request body is over OUTBOUND_MAX_REQUEST_BODY */
    OUTBOUND_E_NOMEM = -5,        /* out of memory, or libcurl refused to set up */
};

typedef struct outbound_allowlist outbound_allowlist;

/* Parses "URL, URL, ..." (commas, optional spaces). An empty spec gives
 * *out = NULL: nothing is allowed. Each entry is scheme://host[:port]/path
 * with http or https, a host name of letters, digits, '-' and '.', or an
 * IP address, and no user, query, fragment or encoded '.', '/' or '\' in
 * its path. Returns 0, or -1 with a message naming the entry. */
int outbound_allowlist_parse(const char *spec, outbound_allowlist **out, char *err, size_t errlen);
void outbound_allowlist_free(outbound_allowlist *l);

/* True when url (len bytes, not NUL-terminated) is allowed by l: the same
 * scheme, host (case-insensitive) and port as an entry, and a path equal
 * to the entry's or under it (the entry's path ends with '/', or the next
 * byte of the URL's path is '/'). Otherwise false, with a reason in why. */
bool outbound_url_allowed(const outbound_allowlist *l, const char *url, size_t len, char *why, size_t whylen);

typedef struct outbound_post_args {
    int64_t pid, uid;               /* who asks: counted in flight */
    const outbound_allowlist *allow;
    const char *url;
    size_t url_len;
    const char *content_type;
    const char *body;               /* copied */
    size_t len;
    uint32_t timeout_ms;
    uint32_t max_project, max_user; /* POSTs in flight at once */
} outbound_post_args;

/* Starts a POST; done is called later with the outcome (never inside this
 * call). Returns its id (> 0), or one of OUTBOUND_E_* with nothing
 * started. */
int64_t outbound_post(rtmd_server *srv, const outbound_post_args *a, outbound_done_fn done, void *arg);

/* Stops a POST in flight (its connection is dropped) without calling its
 * done; an id that already finished is ignored. */
void outbound_cancel(rtmd_server *srv, int64_t id);

#endif
