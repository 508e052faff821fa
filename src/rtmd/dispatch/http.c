/* The HTTP gate's router and response helpers (http.h). */
#include "http.h"

#include <stdio.h>
#include <string.h>

int http_register(rtmd_http_router *r, const rtmd_http_route *routes, size_t n)
{
    if (n > RTMD_HTTP_ROUTES_MAX - r->n)
        return -1;
    memcpy(&r->routes[r->n], routes, n * sizeof *routes);
    r->n += n;
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

/* Queues the status line and headers of a response of len body bytes;
 * returns 0, or -1 when the connection refused them. */
static int respond_head(rtmd_conn *c, bool keep_alive, int status, const char *type, const char *headers, uint64_t len)
{
    char head[256 + HTTP_EXTRA_HEADERS_MAX];
    if (headers == NULL || strlen(headers) > HTTP_EXTRA_HEADERS_MAX)
        headers = "";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n%sConnection: %s\r\n\r\n",
                     status, reason_phrase(status), type, (unsigned long long)len, headers,
                     keep_alive ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1; /* cannot happen: type is one of ours, headers bounded */
    return conn_send_raw(c, head, (size_t)n);
}

static void respond(rtmd_conn *c, bool keep_alive, bool head_only, int status, const char *type, const char *headers,
                    const void *body, size_t len)
{
    if (respond_head(c, keep_alive, status, type, headers, len) == 0 && !head_only)
        conn_send_raw(c, body, len);
}

void http_respond_with(rtmd_conn *c, const http_request *req, int status, const char *type, const char *headers,
                       const void *body, size_t len)
{
    respond(c, req->keep_alive, strcmp(req->method, "HEAD") == 0, status, type, headers, body, len);
}

void http_defer(rtmd_conn *c, const http_request *req, http_deferred *d)
{
    *d = (http_deferred){c, req->keep_alive, strcmp(req->method, "HEAD") == 0};
    conn_ref(c);
    /* The gate would close a link whose request said "Connection: close"
     * as soon as the handler returns; the deferred answer closes it, once
     * written. */
    c->http_answer_later = true;
}

void http_deferred_respond(http_deferred *d, int status, const char *type, const char *headers, const void *body,
                           size_t len)
{
    rtmd_conn *c = d->c;
    if (!c)
        return;
    d->c = NULL;
    if (!c->closing) {
        respond(c, d->keep_alive, d->head, status, type, headers, body, len);
        if (!d->keep_alive)
            conn_close_after_flush(c);
        conn_http_answered(c);
    }
    conn_unref(c);
}

bool http_deferred_respond_source(http_deferred *d, int status, const char *type, const char *headers, uint64_t len,
                                  conn_source *src)
{
    rtmd_conn *c = d->c;
    if (!c)
        return false;
    if (c->closing || d->head || len == 0) {
        http_deferred_respond(d, status, type, headers, NULL, len);
        return false;
    }
    if (respond_head(c, d->keep_alive, status, type, headers, len) != 0 || conn_send_source(c, src) != 0) {
        d->c = NULL;
        conn_unref(c);
        return false;
    }
    return true;
}

void http_deferred_source_done(http_deferred *d, rtmd_conn *c, bool finished)
{
    if (!d->c)
        return;
    d->c = NULL;
    if (finished && !c->closing) {
        if (!d->keep_alive)
            conn_close_after_flush(c);
        conn_http_answered(c);
    }
    conn_unref(c);
}

void http_respond(rtmd_conn *c, const http_request *req, int status, const char *type, const void *body, size_t len)
{
    http_respond_with(c, req, status, type, NULL, body, len);
}

void http_respond_error(rtmd_conn *c, const http_request *req, int status, const char *code, const char *description)
{
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"description\":\"%s\"}", code, description);
    http_respond(c, req, status, "application/json", body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1);
}

static bool path_matches(const char *pattern, const char *path)
{
    const char *star = strchr(pattern, '*');
    if (star && star[1] != '\0') {
        /* '*' inside: one non-empty segment there. */
        size_t pre = (size_t)(star - pattern);
        if (strncmp(pattern, path, pre) != 0)
            return false;
        const char *seg = path + pre, *end = seg;
        while (*end && *end != '/')
            end++;
        return end > seg && strcmp(end, star + 1) == 0;
    }
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0;
    return strcmp(pattern, path) == 0;
}

static bool method_matches(const char *want, const char *method)
{
    if (!want || strcmp(want, method) == 0)
        return true;
    return strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

void rtmd_http_handle(rtmd_conn *c, const http_request *req)
{
    const rtmd_http_router *r = c->srv->http;
    bool path_known = false;
    for (size_t i = 0; i < r->n; i++) {
        const rtmd_http_route *route = &r->routes[i];
        if (!path_matches(route->path, req->path))
            continue;
        path_known = true;
        if (method_matches(route->method, req->method)) {
            route->fn(c, req);
            return;
        }
    }
    if (path_known)
        http_respond_error(c, req, 405, "method_not_allowed", "this resource does not answer that method");
    else
        http_respond_error(c, req, 404, "not_found", "no such resource");
}
