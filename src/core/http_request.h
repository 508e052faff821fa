/* Parsing of an HTTP/1.1 request head (and a bounded body) with
 * http-parser: used by the HTTP listener and the WebSocket upgrade; and
 * the percent-decoding of query strings and form bodies. */
#ifndef RTM_HTTP_REQUEST_H
#define RTM_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEAD 8192
#define HTTP_MAX_HEADERS 32

typedef struct http_header {
    char name[64];   /* lower-cased */
    char value[512];
} http_header;

typedef struct http_request {
    char method[16];        /* "GET", "POST", ... */
    char path[1024];        /* URL path without the query */
    char query[1024];       /* text after '?', or empty */
    int nheaders;
    http_header headers[HTTP_MAX_HEADERS];
    const char *body;       /* points into the parsed buffer */
    size_t body_len;
    bool keep_alive;
    bool upgrade;           /* Connection: upgrade with an Upgrade header */
} http_request;

/* Result codes of http_request_parse besides a positive length. */
#define HTTP_PARSE_MORE 0
#define HTTP_PARSE_BAD (-1)
#define HTTP_PARSE_TOO_LARGE (-2)

/* Parses one complete request (head and Content-Length body) at buf.
 * Returns the number of bytes it spans, HTTP_PARSE_MORE if incomplete, or a
 * negative error. Bodies larger than max_body are HTTP_PARSE_TOO_LARGE. */
long http_request_parse(const char *buf, size_t len, size_t max_body, http_request *req);
/* Case-insensitive header lookup; NULL if absent. */
const char *http_request_header(const http_request *req, const char *name);

/* Percent-decodes s[0..n) ('+' is a space, as in forms and queries) into
 * out (cap bytes, NUL terminated). Returns the length, or -1 when it does
 * not fit, is badly escaped or holds a NUL. */
long http_url_decode(const char *s, size_t n, char *out, size_t cap);
/* The value of parameter name in a query string (a=1&b=2), decoded into
 * out by http_url_decode: 1 found, 0 absent, -1 bad (see above). */
int http_query_param(const char *query, const char *name, char *out, size_t cap);

#endif
