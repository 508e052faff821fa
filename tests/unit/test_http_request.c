/* Unit tests of the HTTP request parser (src/core/http_request.c). */
#include "http_request.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static long parse(const char *text, size_t max_body, http_request *req)
{
    return http_request_parse(text, strlen(text), max_body, req);
}

static void test_simple_get(void **state)
{
    const char *text = "GET /service/websocket?a=1&b=2 HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "X-Mixed-CASE:   padded value  \r\n"
                       "\r\n";
    http_request req;
    assert_int_equal(parse(text, 0, &req), (long)strlen(text));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/service/websocket");
    assert_string_equal(req.query, "a=1&b=2");
    assert_int_equal(req.nheaders, 2);
    assert_string_equal(req.headers[0].name, "host");
    assert_string_equal(req.headers[1].name, "x-mixed-case");
    assert_string_equal(req.headers[1].value, "padded value");
    assert_string_equal(http_request_header(&req, "HOST"), "example.com");
    assert_string_equal(http_request_header(&req, "x-mixed-case"), "padded value");
    assert_null(http_request_header(&req, "content-length"));
    assert_int_equal(req.body_len, 0);
    assert_true(req.keep_alive);
    assert_false(req.upgrade);
}

static void test_no_query_and_fragment(void **state)
{
    http_request req;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, &req) > 0);
    assert_string_equal(req.path, "/");
    assert_string_equal(req.query, "");
    assert_true(parse("GET /p?q#frag HTTP/1.1\r\nHost: h\r\n\r\n", 0, &req) > 0);
    assert_string_equal(req.path, "/p");
    assert_string_equal(req.query, "q");
    assert_true(parse("GET /p?#frag HTTP/1.1\r\nHost: h\r\n\r\n", 0, &req) > 0);
    assert_string_equal(req.path, "/p");
    assert_string_equal(req.query, "");
}

static void test_absolute_url(void **state)
{
    http_request req;
    assert_true(parse("GET http://example.com:8080/x/y?z=1 HTTP/1.1\r\nHost: h\r\n\r\n", 0, &req) > 0);
    assert_string_equal(req.path, "/x/y");
    assert_string_equal(req.query, "z=1");
}

static void test_post_body_and_pipelining(void **state)
{
    const char *first = "POST /api/send HTTP/1.1\r\n"
                        "Host: h\r\n"
                        "Content-Length: 5\r\n"
                        "\r\n"
                        "hello";
    char text[256];
    snprintf(text, sizeof text, "%sGET /next HTTP/1.1\r\n\r\n", first);
    http_request req;
    assert_int_equal(parse(text, 100, &req), (long)strlen(first));
    assert_string_equal(req.method, "POST");
    assert_int_equal(req.body_len, 5);
    assert_memory_equal(req.body, "hello", 5);
    assert_ptr_equal(req.body, text + strlen(first) - 5);
    /* the body is awaited */
    assert_int_equal(http_request_parse(text, strlen(first) - 1, 100, &req), HTTP_PARSE_MORE);
}

/* A body may extend past the first HTTP_MAX_HEAD bytes of the buffer. */
static void test_body_across_head_limit(void **state)
{
    size_t body_len = 3 * HTTP_MAX_HEAD;
    size_t cap = body_len + 256;
    char *buf = malloc(cap);
    assert_non_null(buf);
    int head = snprintf(buf, cap, "\r\nPUT /big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", body_len);
    for (size_t i = 0; i < body_len; i++)
        buf[(size_t)head + i] = (char)('a' + i % 26);
    size_t total = (size_t)head + body_len;
    http_request req;
    assert_int_equal(http_request_parse(buf, total - 1, body_len, &req), HTTP_PARSE_MORE);
    assert_int_equal(http_request_parse(buf, total, body_len, &req), (long)total);
    assert_string_equal(req.method, "PUT");
    assert_ptr_equal(req.body, buf + head);
    assert_int_equal(req.body_len, body_len);
    assert_int_equal(http_request_parse(buf, total, body_len - 1, &req), HTTP_PARSE_TOO_LARGE);
    free(buf);
}

static void test_body_too_large(void **state)
{
    http_request req;
    const char *text = "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
    assert_int_equal(parse(text, 100, &req), HTTP_PARSE_TOO_LARGE);
    text = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    assert_int_equal(parse(text, 100, &req), HTTP_PARSE_MORE);
}

static void test_chunked_refused(void **state)
{
    http_request req;
    const char *text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(parse(text, 100, &req), HTTP_PARSE_BAD);
}

static void test_one_byte_pieces(void **state)
{
    const char *text = "POST /api?x=y HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 7\r\n"
                       "\r\n"
                       "{\"a\":1}";
    size_t len = strlen(text);
    char *buf = malloc(len); /* exact size so ASan sees any overread */
    assert_non_null(buf);
    http_request req;
    for (size_t i = 1; i < len; i++) {
        buf[i - 1] = text[i - 1];
        assert_int_equal(http_request_parse(buf, i, 100, &req), HTTP_PARSE_MORE);
    }
    buf[len - 1] = text[len - 1];
    assert_int_equal(http_request_parse(buf, len, 100, &req), (long)len);
    assert_string_equal(req.path, "/api");
    assert_string_equal(req.query, "x=y");
    assert_string_equal(http_request_header(&req, "content-type"), "application/json");
    assert_int_equal(req.body_len, 7);
    assert_memory_equal(req.body, "{\"a\":1}", 7);
    free(buf);
}

static void test_head_too_large(void **state)
{
    size_t cap = 2 * HTTP_MAX_HEAD;
    char *buf = malloc(cap);
    assert_non_null(buf);
    http_request req;
    /* a long header that never ends */
    int n = snprintf(buf, cap, "GET / HTTP/1.1\r\nX-Long: ");
    memset(buf + n, 'a', cap - (size_t)n);
    assert_int_equal(http_request_parse(buf, HTTP_MAX_HEAD - 1, 0, &req), HTTP_PARSE_BAD); /* value > 511 */
    /* long request line, no end of head */
    memset(buf, 0, cap);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'p', cap - 5);
    assert_int_equal(http_request_parse(buf, HTTP_MAX_HEAD - 1, 0, &req), HTTP_PARSE_MORE);
    assert_int_equal(http_request_parse(buf, HTTP_MAX_HEAD, 0, &req), HTTP_PARSE_TOO_LARGE);
    assert_int_equal(http_request_parse(buf, cap, 0, &req), HTTP_PARSE_TOO_LARGE);
    /* a complete head longer than HTTP_MAX_HEAD is refused too */
    size_t off = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    while (off < HTTP_MAX_HEAD) {
        off += (size_t)snprintf(buf + off, cap - off, "X-Filler: %0400d\r\n", 0);
    }
    memcpy(buf + off, "\r\n", 2);
    assert_int_equal(http_request_parse(buf, off + 2, 0, &req), HTTP_PARSE_TOO_LARGE);
    free(buf);
}

static void test_header_limits(void **state)
{
    char text[8192];
    http_request req;
    /* HTTP_MAX_HEADERS headers are fine, one more is refused */
    size_t off = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "H%d: %d\r\n", i, i);
    snprintf(text + off, sizeof text - off, "\r\n");
    assert_true(parse(text, 0, &req) > 0);
    assert_int_equal(req.nheaders, HTTP_MAX_HEADERS);
    assert_string_equal(http_request_header(&req, "h31"), "31");
    snprintf(text + off, sizeof text - off, "Extra: 1\r\n\r\n");
    assert_int_equal(parse(text, 0, &req), HTTP_PARSE_BAD);

    /* a 63-byte name fits, 64 does not */
    char name[80];
    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(text, sizeof text, "GET / HTTP/1.1\r\n%s: v\r\n\r\n", name);
    assert_true(parse(text, 0, &req) > 0);
    assert_string_equal(req.headers[0].name, name);
    name[63] = 'n';
    name[64] = '\0';
    snprintf(text, sizeof text, "GET / HTTP/1.1\r\n%s: v\r\n\r\n", name);
    assert_int_equal(parse(text, 0, &req), HTTP_PARSE_BAD);

    /* a 511-byte value fits, 512 does not */
    char value[600];
    memset(value, 'v', 511);
    value[511] = '\0';
    snprintf(text, sizeof text, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", value);
    assert_true(parse(text, 0, &req) > 0);
    assert_string_equal(http_request_header(&req, "x"), value);
    value[511] = 'v';
    value[512] = '\0';
    snprintf(text, sizeof text, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", value);
    assert_int_equal(parse(text, 0, &req), HTTP_PARSE_BAD);

    /* a path that does not fit */
    off = (size_t)snprintf(text, sizeof text, "GET /");
    memset(text + off, 'p', 1100);
    off += 1100;
    snprintf(text + off, sizeof text - off, " HTTP/1.1\r\n\r\n");
    assert_int_equal(parse(text, 0, &req), HTTP_PARSE_BAD);
}

static void test_empty_header_value(void **state)
{
    http_request req;
    assert_true(parse("GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n", 0, &req) > 0);
    assert_int_equal(req.nheaders, 2);
    assert_string_equal(http_request_header(&req, "x-empty"), "");
    assert_string_equal(http_request_header(&req, "host"), "h");
}

static void test_keep_alive(void **state)
{
    http_request req;
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", 0, &req) > 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, &req) > 0);
    assert_true(req.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, &req) > 0);
    assert_false(req.keep_alive);
}

static void test_upgrade_flag(void **state)
{
    const char *text = "GET /ws HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "\r\n"
                       "\x82\x80";
    http_request req;
    assert_int_equal(parse(text, 0, &req), (long)strlen(text) - 2);
    assert_true(req.upgrade);
    assert_string_equal(req.path, "/ws");
}

static void test_bad_requests(void **state)
{
    http_request req;
    assert_int_equal(parse("NOT A REQUEST\r\n\r\n", 0, &req), HTTP_PARSE_BAD);
    assert_int_equal(parse("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 0, &req), HTTP_PARSE_BAD);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\n", 0, &req), HTTP_PARSE_BAD);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0, &req), HTTP_PARSE_BAD);
    assert_int_equal(http_request_parse("", 0, 0, &req), HTTP_PARSE_MORE);
}

static void test_url_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(http_url_decode("a%20b+c%2Fd", 11, out, sizeof out), 7);
    assert_string_equal(out, "a b c/d");
    assert_int_equal(http_url_decode("%E4%BD%A0", 9, out, sizeof out), 3); /* bytes kept as they are */
    assert_int_equal(http_url_decode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(http_url_decode("%2", 2, out, sizeof out), -1);   /* cut escape */
    assert_int_equal(http_url_decode("%zz", 3, out, sizeof out), -1);  /* not hex */
    assert_int_equal(http_url_decode("a%00b", 5, out, sizeof out), -1); /* NUL */
    assert_int_equal(http_url_decode("0123456789abcdef", 16, out, sizeof out), -1); /* no room for the NUL */
    assert_int_equal(http_url_decode("0123456789abcde", 15, out, sizeof out), 15);
}

static void test_query_param(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(http_query_param("user=al%40ice&page=2", "user", out, sizeof out), 1);
    assert_string_equal(out, "al@ice");
    assert_int_equal(http_query_param("user=al%40ice&page=2", "page", out, sizeof out), 1);
    assert_string_equal(out, "2");
    assert_int_equal(http_query_param("page_size=5", "page", out, sizeof out), 0); /* a longer name is not it */
    assert_int_equal(http_query_param("", "page", out, sizeof out), 0);
    assert_int_equal(http_query_param("page", "page", out, sizeof out), 0);      /* no '=' */
    assert_int_equal(http_query_param("a=1&&page=3", "page", out, sizeof out), 1);
    assert_string_equal(out, "3");
    assert_int_equal(http_query_param("page=%G1", "page", out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_no_query_and_fragment),
        cmocka_unit_test(test_absolute_url),
        cmocka_unit_test(test_post_body_and_pipelining),
        cmocka_unit_test(test_body_across_head_limit),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_chunked_refused),
        cmocka_unit_test(test_one_byte_pieces),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_empty_header_value),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_upgrade_flag),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
