/* libFuzzer target: arbitrary bytes through http_request_parse (whole and
 * as a prefix, which must agree) and, for a parsed request, through
 * ws_handshake_response. Traps on any inconsistent result. */
#include "http_request.h"
#include "ws.h"

#include <stdint.h>
#include <string.h>

#define MAX_BODY 4096

static void check_request(const http_request *req, const uint8_t *data, long n)
{
    if (memchr(req->method, '\0', sizeof req->method) == NULL ||
        memchr(req->path, '\0', sizeof req->path) == NULL ||
        memchr(req->query, '\0', sizeof req->query) == NULL)
        __builtin_trap();
    if (req->nheaders < 0 || req->nheaders > HTTP_MAX_HEADERS)
        __builtin_trap();
    for (int i = 0; i < req->nheaders; i++) {
        const http_header *h = &req->headers[i];
        if (memchr(h->name, '\0', sizeof h->name) == NULL ||
            memchr(h->value, '\0', sizeof h->value) == NULL)
            __builtin_trap();
        for (const char *p = h->name; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                __builtin_trap();
        }
    }
    if (req->body_len > MAX_BODY)
        __builtin_trap();
    const char *start = (const char *)data;
    if (req->body < start || req->body + req->body_len > start + n)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_request req;
    long n = http_request_parse((const char *)data, size, MAX_BODY, &req);
    if (n == HTTP_PARSE_MORE || n == HTTP_PARSE_BAD || n == HTTP_PARSE_TOO_LARGE)
        ; /* fine */
    else if (n < 0 || (size_t)n > size)
        __builtin_trap();

    /* A prefix never completes differently from the whole. */
    if (size > 1) {
        http_request preq;
        long pn = http_request_parse((const char *)data, size / 2, MAX_BODY, &preq);
        if (pn > 0 && pn != n)
            __builtin_trap();
        if (n == HTTP_PARSE_MORE && pn != HTTP_PARSE_MORE)
            __builtin_trap();
    }

    if (n <= 0)
        return 0;
    check_request(&req, data, n);
    (void)http_request_header(&req, "sec-websocket-key");

    char resp[256];
    int status = 0;
    int r = ws_handshake_response(&req, "/service/websocket", resp, sizeof resp, &status);
    if (r >= 0) {
        if (status != 101 || (size_t)r >= sizeof resp || (size_t)r != strlen(resp) ||
            memcmp(resp, "HTTP/1.1 101 ", 13) != 0)
            __builtin_trap();
        /* the same request with too little room must fail cleanly */
        char small[64];
        if (ws_handshake_response(&req, "/service/websocket", small, sizeof small, &status) != -1 ||
            status != 500)
            __builtin_trap();
    } else if (r != -1 || (status != 400 && status != 404 && status != 426 && status != 500)) {
        __builtin_trap();
    }
    return 0;
}
