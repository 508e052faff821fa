/* HTTP/1.1 request parsing on top of http-parser (see http_request.h): the
 * request line, a bounded set of headers and a Content-Length body.
 *
 * Limits and choices:
 *  - the head (request line and headers) may span at most HTTP_MAX_HEAD
 *    bytes; a longer incomplete head is HTTP_PARSE_TOO_LARGE;
 *  - more than HTTP_MAX_HEADERS headers, a header name longer than 63
 *    bytes, a header value longer than 511 bytes, a URL whose path or query
 *    does not fit the request fields: HTTP_PARSE_BAD (nothing is
 *    truncated, so what is returned is always what was sent);
 *  - header names are lower-cased, values have surrounding blanks removed;
 *  - path and query are kept raw (no percent-decoding); a fragment is
 *    dropped; an absolute-form target keeps only its path and query;
 *  - Transfer-Encoding (chunked bodies included) is refused (HTTP_PARSE_BAD);
 *    a Content-Length above max_body is HTTP_PARSE_TOO_LARGE.
 * Each call parses from the start of the buffer, so the caller may call it
 * again on a growing buffer until it returns a length. Pipelined bytes after
 * the request are not looked at. */
#include "http_request.h"

#include <http_parser.h>

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

enum { LAST_NONE, LAST_FIELD, LAST_VALUE };

typedef struct parse_ctx {
    http_request *req;
    size_t max_body;
    char url[HTTP_MAX_HEAD];
    size_t url_len;
    size_t name_len;   /* of the header being read */
    size_t value_len;
    int last;          /* LAST_*: the previous header callback */
    bool head_done;
    bool complete;
    bool bad;
    bool too_large;
} parse_ctx;

static int append(char *dst, size_t cap, size_t *len, const char *at, size_t n)
{
    if (n >= cap - *len)
        return -1;
    memcpy(dst + *len, at, n);
    *len += n;
    dst[*len] = '\0';
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    parse_ctx *c = p->data;
    if (append(c->url, sizeof c->url, &c->url_len, at, n) != 0) {
        c->bad = true;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    parse_ctx *c = p->data;
    http_request *r = c->req;
    if (c->last != LAST_FIELD) {
        if (r->nheaders >= HTTP_MAX_HEADERS) {
            c->bad = true;
            return -1;
        }
        r->nheaders++;
        c->name_len = 0;
        c->value_len = 0;
        c->last = LAST_FIELD;
    }
    http_header *h = &r->headers[r->nheaders - 1];
    size_t start = c->name_len;
    if (append(h->name, sizeof h->name, &c->name_len, at, n) != 0) {
        c->bad = true;
        return -1;
    }
    for (size_t i = start; i < c->name_len; i++)
        h->name[i] = (char)tolower((unsigned char)h->name[i]);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    parse_ctx *c = p->data;
    http_request *r = c->req;
    if (r->nheaders == 0) { /* cannot happen with http-parser; be safe */
        c->bad = true;
        return -1;
    }
    c->last = LAST_VALUE;
    http_header *h = &r->headers[r->nheaders - 1];
    if (append(h->value, sizeof h->value, &c->value_len, at, n) != 0) {
        c->bad = true;
        return -1;
    }
    return 0;
}

static void trim(char *s)
{
    size_t len = strlen(s), start = 0;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    while (start < len && (s[start] == ' ' || s[start] == '\t'))
        start++;
    memmove(s, s + start, len - start);
    s[len - start] = '\0';
}

/* Copies url[off, off+n) into dst; fails if it does not fit. */
static int copy_part(char *dst, size_t cap, const char *url, size_t off, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, url + off, n);
    dst[n] = '\0';
    return 0;
}

static int split_url(parse_ctx *c)
{
    http_request *r = c->req;
    const char *u = c->url;
    size_t n = c->url_len;

    if (n > 0 && (u[0] == '/' || (u[0] == '*' && n == 1))) {
        /* origin-form (the usual case) or "*" */
        size_t end = n;
        const char *hash = memchr(u, '#', n);
        if (hash)
            end = (size_t)(hash - u);
        const char *q = memchr(u, '?', end);
        size_t plen = q ? (size_t)(q - u) : end;
        if (copy_part(r->path, sizeof r->path, u, 0, plen) != 0)
            return -1;
        if (q && copy_part(r->query, sizeof r->query, u, plen + 1, end - plen - 1) != 0)
            return -1;
        return 0;
    }
    struct http_parser_url pu;
    http_parser_url_init(&pu);
    if (http_parser_parse_url(u, n, strcmp(r->method, "CONNECT") == 0, &pu) != 0)
        return -1;
    if (pu.field_set & (1u << UF_PATH)) {
        if (copy_part(r->path, sizeof r->path, u, pu.field_data[UF_PATH].off,
                      pu.field_data[UF_PATH].len) != 0)
            return -1;
    } else if (strcmp(r->method, "CONNECT") != 0) {
        strcpy(r->path, "/");
    }
    if (pu.field_set & (1u << UF_QUERY)) {
        if (copy_part(r->query, sizeof r->query, u, pu.field_data[UF_QUERY].off,
                      pu.field_data[UF_QUERY].len) != 0)
            return -1;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    parse_ctx *c = p->data;
    http_request *r = c->req;

    c->head_done = true;
    const char *m = http_method_str((enum http_method)p->method);
    if (strlen(m) >= sizeof r->method) {
        c->bad = true;
        return -1;
    }
    strcpy(r->method, m);
    if (split_url(c) != 0) {
        c->bad = true;
        return -1;
    }
    for (int i = 0; i < r->nheaders; i++)
        trim(r->headers[i].value);
    if ((p->flags & F_CHUNKED) || http_request_header(r, "transfer-encoding")) {
        c->bad = true;
        return -1;
    }
    /* content_length is ULLONG_MAX when the header is absent */
    if (p->content_length != UINT64_MAX && p->content_length > c->max_body) {
        c->too_large = true;
        return -1;
    }
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade && p->method != HTTP_CONNECT;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    parse_ctx *c = p->data;
    http_request *r = c->req;
    if (!r->body)
        r->body = at;
    r->body_len += n; /* chunks are contiguous in the caller's buffer */
    return 0;
}

static int on_message_complete(http_parser *p)
{
    parse_ctx *c = p->data;
    c->complete = true;
    http_parser_pause(p, 1); /* stop at the end of this request */
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Runs the parser over n bytes; returns how many it consumed or -1 on a
 * parse error (the context flags tell which). */
static long run(http_parser *p, parse_ctx *c, const char *data, size_t n)
{
    size_t used = http_parser_execute(p, &settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (c->complete)
        return (long)used;
    if (e != HPE_OK || used != n || c->bad || c->too_large)
        return -1;
    return (long)used;
}

long http_request_parse(const char *buf, size_t len, size_t max_body, http_request *req)
{
    memset(req, 0, sizeof *req);
    if (len == 0)
        return HTTP_PARSE_MORE;

    parse_ctx c; /* about 8 KiB: the URL is collected before splitting */
    c.req = req;
    c.max_body = max_body;
    c.url[0] = '\0';
    c.url_len = 0;
    c.name_len = 0;
    c.value_len = 0;
    c.last = LAST_NONE;
    c.head_done = c.complete = c.bad = c.too_large = false;

    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &c;

    /* First the bytes that may hold the head, then the rest (body). */
    size_t first = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    long used = run(&p, &c, buf, first);
    long total = used;
    if (used >= 0 && !c.complete) {
        if (!c.head_done) {
            if (len >= HTTP_MAX_HEAD)
                return HTTP_PARSE_TOO_LARGE;
            return HTTP_PARSE_MORE;
        }
        if (len > first) {
            used = run(&p, &c, buf + first, len - first);
            total = used < 0 ? used : (long)first + used;
        }
    }
    if (used < 0) {
        return c.too_large ? HTTP_PARSE_TOO_LARGE : HTTP_PARSE_BAD;
    }
    if (!c.complete)
        return HTTP_PARSE_MORE;
    if (!req->body)
        req->body = buf + total; /* empty body: point just past the head */
    return total;
}

const char *http_request_header(const http_request *req, const char *name)
{
    for (int i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long http_url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int h1 = i + 1 < n ? hex_value(s[i + 1]) : -1, h2 = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (h1 < 0 || h2 < 0)
                return -1;
            ch = (char)(h1 * 16 + h2);
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (ch == '\0' || k + 1 >= cap)
            return -1;
        out[k++] = ch;
    }
    if (cap == 0)
        return -1;
    out[k] = '\0';
    return (long)k;
}

int http_query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return http_url_decode(p + nlen + 1, n - nlen - 1, out, cap) < 0 ? -1 : 1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}
