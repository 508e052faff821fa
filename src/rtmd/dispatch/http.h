/* The HTTP gate's router: a table of routes (method and path to a
 * handler) that modules fill through their descriptor (module.h) and the
 * server through http_register, and the answer helper handlers use. */
#ifndef RTMD_HTTP_H
#define RTMD_HTTP_H

#include "http_request.h"
#include "server_state.h"

#include <stdbool.h>
#include <stddef.h>

typedef void (*rtmd_http_route_fn)(rtmd_conn *c, const http_request *req);

typedef struct rtmd_http_route {
    const char *method; /* "GET" (HEAD too), "POST", ...; NULL: any method */
    /* exact; a prefix when it ends with '*'; a '*' elsewhere stands for
     * one non-empty path segment: "/STAR/tokens" with a star for STAR
     * matches "/abc/tokens" */
    const char *path;
    rtmd_http_route_fn fn;
} rtmd_http_route;

#define RTMD_HTTP_ROUTES_MAX 64

typedef struct rtmd_http_router {
    rtmd_http_route routes[RTMD_HTTP_ROUTES_MAX];
    size_t n;
} rtmd_http_router;

/* Adds routes; the first that matches a request answers it. Returns 0, or
 * -1 when the table would overflow (nothing added then). */
int http_register(rtmd_http_router *r, const rtmd_http_route *routes, size_t n);

/* The gate's request handler (rtmd_http_handler): runs the matching route,
 * or answers 404 (no such path) or 405 (path known, method not). */
void rtmd_http_handle(rtmd_conn *c, const http_request *req);

/* Answers req with a complete response: the connection stays open when
 * the request asked for it, and an answer to HEAD has no body. */
void http_respond(rtmd_conn *c, const http_request *req, int status, const char *type, const void *body, size_t len);
/* The same with extra header lines: headers is "Name: value\r\n" lines
 * (at most HTTP_EXTRA_HEADERS_MAX bytes; NULL or "" for none). */
#define HTTP_EXTRA_HEADERS_MAX 1024
void http_respond_with(rtmd_conn *c, const http_request *req, int status, const char *type, const char *headers,
                       const void *body, size_t len);
/* An answer given later, once the store committed (rtcat/writes.c): http_defer
 * keeps the connection (a reference) and what the answer needs of the
 * request, and keeps the gate from closing a "Connection: close" link
 * before the answer is written; http_deferred_respond answers (nothing
 * when the connection closed meanwhile) and drops the reference. Exactly
 * one respond follows each defer. Requests pipelined behind a deferred
 * one wait, unparsed, until its answer is out, so answers keep their
 * order. */
typedef struct http_deferred {
    rtmd_conn *c;
    bool keep_alive, head;
} http_deferred;
void http_defer(rtmd_conn *c, const http_request *req, http_deferred *d);
void http_deferred_respond(http_deferred *d, int status, const char *type, const char *headers, const void *body,
                           size_t len);

/* A deferred answer whose body of len bytes src produces in parts
 * (conn_send_source), so that a large body is never in memory whole.
 * Returns true when src is sending: its done must then call
 * http_deferred_source_done. Returns false when src is not used (an
 * answer to HEAD or an empty body: the head alone went out; or the
 * connection closed): the caller frees src, and the answer is over. */
bool http_deferred_respond_source(http_deferred *d, int status, const char *type, const char *headers, uint64_t len,
                                  conn_source *src);
/* From src's done: the body was sent (finished) or the link closed. */
void http_deferred_source_done(http_deferred *d, rtmd_conn *c, bool finished);

/* Answers {"error": code, "description": text} (both plain ASCII) with the status. */
void http_respond_error(rtmd_conn *c, const http_request *req, int status, const char *code, const char *description);

#endif
