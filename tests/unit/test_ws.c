/* Unit tests of the WebSocket server side (src/core/ws.c): the upgrade
 * handshake and framing, with client frames built by hand and the
 * server's frames decoded here. */
#include "ws.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define WS_PATH "/service/websocket"

/* ---- handshake ---------------------------------------------------------- */

/* The sample of RFC 6455 section 1.3 (and what any SHA-1/base64 tool gives
 * for key + GUID). */
static void test_accept_key_rfc_sample(void **state)
{
    char out[29];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* Parses text as a request and runs the handshake on it. */
static int handshake(const char *text, char *resp, size_t cap, int *status)
{
    http_request req;
    long n = http_request_parse(text, strlen(text), 0, &req);
    assert_int_equal(n, (long)strlen(text));
    return ws_handshake_response(&req, WS_PATH, resp, cap, status);
}

static const char *const expected_101 =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

static void test_handshake_valid(void **state)
{
    const char *text = "GET " WS_PATH " HTTP/1.1\r\n"
                       "Host: server.example.com\r\n"
                       "Upgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Protocol: chat, superchat\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Origin: http://example.com\r\n"
                       "\r\n";
    char resp[512];
    int status = 0;
    int n = handshake(text, resp, sizeof resp, &status);
    assert_int_equal(n, (int)strlen(expected_101));
    assert_string_equal(resp, expected_101);
    assert_int_equal(status, 101);
    assert_null(strstr(resp, "Sec-WebSocket-Protocol"));

    /* the same with a query string and a minimal Connection header */
    text = "GET " WS_PATH "?ns=1 HTTP/1.1\r\n"
           "Host: h\r\n"
           "Upgrade: websocket\r\n"
           "Connection: upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "\r\n";
    assert_int_equal(handshake(text, resp, sizeof resp, &status), (int)strlen(expected_101));
    assert_string_equal(resp, expected_101);

    /* a response buffer that is too small */
    assert_int_equal(handshake(text, resp, 20, &status), -1);
    assert_int_equal(status, 500);
}

static void expect_refusal(const char *text, int want_status)
{
    char resp[512];
    int status = 0;
    assert_int_equal(handshake(text, resp, sizeof resp, &status), -1);
    assert_int_equal(status, want_status);
}

static void test_handshake_refuse_post(void **state)
{
    expect_refusal("POST " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   400);
}

static void test_handshake_refuse_no_upgrade(void **state)
{
    /* no Upgrade header */
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   400);
    /* Upgrade to something else */
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   400);
    /* Connection without the upgrade token */
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: keep-alive, upgraded\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   400);
    /* no Connection header */
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   400);
}

static void test_handshake_refuse_version_8(void **state)
{
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   426);
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   426);
}

static void test_handshake_refuse_wrong_path(void **state)
{
    expect_refusal("GET /other HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   404);
    expect_refusal("GET " WS_PATH "/x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   404);
}

static void test_handshake_refuse_missing_key(void **state)
{
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   400);
    /* keys that do not encode 16 bytes */
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n\r\n",
                   400);
    expect_refusal("GET " WS_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==\r\n\r\n",
                   400);
}

static void test_handshake_one_byte_pieces(void **state)
{
    const char *text = "GET " WS_PATH " HTTP/1.1\r\n"
                       "Host: h\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "\r\n";
    size_t len = strlen(text);
    char *buf = malloc(len);
    assert_non_null(buf);
    http_request req;
    long n = HTTP_PARSE_MORE;
    size_t have = 0;
    while (n == HTTP_PARSE_MORE && have < len) {
        buf[have] = text[have];
        have++;
        n = http_request_parse(buf, have, 0, &req);
    }
    assert_int_equal(have, len);
    assert_int_equal(n, (long)len);
    assert_true(req.upgrade);
    char resp[512];
    int status = 0;
    assert_int_equal(ws_handshake_response(&req, WS_PATH, resp, sizeof resp, &status),
                     (int)strlen(expected_101));
    assert_string_equal(resp, expected_101);
    free(buf);
}

static void test_handshake_oversized_head(void **state)
{
    size_t cap = HTTP_MAX_HEAD + 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    int off = snprintf(buf, cap, "GET " WS_PATH "?");
    memset(buf + off, 'q', cap - (size_t)off);
    http_request req;
    assert_int_equal(http_request_parse(buf, cap, 0, &req), HTTP_PARSE_TOO_LARGE);
    free(buf);
}

/* ---- framing ------------------------------------------------------------ */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

typedef struct received {
    uint8_t *data;
    size_t len;
    bool binary;
} received;

typedef struct harness {
    ws_conn *ws;
    received msgs[16];
    int nmsgs;
    uint8_t *sent;
    size_t sent_len, sent_cap;
    bool fail_send;
    bool echo; /* on_message answers with ws_send_binary */
} harness;

static void on_message(void *ud, const uint8_t *data, size_t len, bool binary)
{
    harness *h = ud;
    assert_true(h->nmsgs < 16);
    received *m = &h->msgs[h->nmsgs++];
    m->data = malloc(len + 1);
    assert_non_null(m->data);
    memcpy(m->data, data, len);
    m->len = len;
    m->binary = binary;
    if (h->echo)
        assert_int_equal(ws_send_binary(h->ws, data, len), 0);
}

static int on_send(void *ud, const uint8_t *data, size_t len)
{
    harness *h = ud;
    if (h->fail_send)
        return -1;
    if (h->sent_len + len > h->sent_cap) {
        size_t cap = h->sent_cap ? h->sent_cap : 256;
        while (cap < h->sent_len + len)
            cap *= 2;
        h->sent = realloc(h->sent, cap);
        assert_non_null(h->sent);
        h->sent_cap = cap;
    }
    memcpy(h->sent + h->sent_len, data, len);
    h->sent_len += len;
    return 0;
}

static const ws_callbacks callbacks = { .on_message = on_message, .send = on_send };

static void harness_init(harness *h, size_t max_message)
{
    memset(h, 0, sizeof *h);
    h->ws = ws_conn_new(&callbacks, h, max_message);
    assert_non_null(h->ws);
}

static void harness_free(harness *h)
{
    ws_conn_free(h->ws);
    for (int i = 0; i < h->nmsgs; i++)
        free(h->msgs[i].data);
    free(h->sent);
    memset(h, 0, sizeof *h);
}

/* Feeds len bytes whole (chunk 0) or in pieces of chunk bytes; stops at the
 * first failure. Each piece is copied to its own allocation so that reads
 * past it are caught by ASan. */
static int feed(harness *h, const uint8_t *data, size_t len, size_t chunk)
{
    if (chunk == 0)
        chunk = len ? len : 1;
    size_t off = 0;
    do {
        size_t n = len - off < chunk ? len - off : chunk;
        uint8_t *piece = malloc(n ? n : 1);
        assert_non_null(piece);
        if (n)
            memcpy(piece, data + off, n);
        int r = ws_feed(h->ws, piece, n);
        free(piece);
        if (r != 0)
            return r;
        off += n;
    } while (off < len);
    return 0;
}

/* Appends one masked (or unmasked) client frame to out; returns its size. */
static size_t client_frame(uint8_t *out, bool fin, uint8_t opcode, const void *payload, size_t len, bool masked)
{
    static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t maskbit = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(maskbit | len);
    } else if (len <= 0xffff) {
        out[n++] = maskbit | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = maskbit | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = masked ? (uint8_t)(p[i] ^ key[i % 4]) : p[i];
    return n + len;
}

typedef struct server_frame {
    bool fin;
    uint8_t opcode;
    const uint8_t *payload;
    size_t len;
} server_frame;

/* Decodes the server's frames; they must be complete, unmasked and have no
 * reserved bits. Returns the number of frames. */
static int decode_frames(const uint8_t *buf, size_t len, server_frame *out, int max)
{
    int count = 0;
    size_t off = 0;
    while (off < len) {
        assert_true(count < max);
        assert_true(len - off >= 2);
        uint8_t b0 = buf[off], b1 = buf[off + 1];
        off += 2;
        assert_int_equal(b0 & 0x70, 0);     /* no RSV bits */
        assert_int_equal(b1 & 0x80, 0);     /* not masked */
        uint64_t plen = b1 & 0x7f;
        if (plen == 126) {
            assert_true(len - off >= 2);
            plen = ((uint64_t)buf[off] << 8) | buf[off + 1];
            assert_true(plen >= 126);
            off += 2;
        } else if (plen == 127) {
            assert_true(len - off >= 8);
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | buf[off + i];
            assert_true(plen > 0xffff);
            off += 8;
        }
        assert_true(len - off >= plen);
        out[count].fin = (b0 & 0x80) != 0;
        out[count].opcode = b0 & 0x0f;
        out[count].payload = buf + off;
        out[count].len = (size_t)plen;
        off += (size_t)plen;
        count++;
    }
    return count;
}

static void assert_close_frame(const server_frame *f, uint16_t code)
{
    assert_true(f->fin);
    assert_int_equal(f->opcode, OP_CLOSE);
    assert_true(f->len >= 2);
    assert_int_equal(((unsigned)f->payload[0] << 8) | f->payload[1], code);
}

/* Chunk sizes every framing test runs with: whole, 1 byte, a few bytes. */
static const size_t chunks[] = { 0, 1, 2, 5 };
#define NCHUNKS (sizeof chunks / sizeof chunks[0])

static void test_frame_binary(void **state)
{
    const char payload[] = "hello, binary \x00\x01\x02";
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_BINARY, payload, sizeof payload, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        assert_true(h.msgs[0].binary);
        assert_int_equal(h.msgs[0].len, sizeof payload);
        assert_memory_equal(h.msgs[0].data, payload, sizeof payload);
        assert_int_equal(h.sent_len, 0);
        assert_false(ws_closed(h.ws));
        harness_free(&h);
    }
}

static void test_frame_fragmented_with_ping(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[128];
        size_t n = 0;
        n += client_frame(buf + n, false, OP_BINARY, "first-", 6, true);
        n += client_frame(buf + n, true, OP_PING, "ping data", 9, true);
        n += client_frame(buf + n, false, OP_CONT, "second-", 7, true);
        n += client_frame(buf + n, true, OP_CONT, "third", 5, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        assert_true(h.msgs[0].binary);
        assert_int_equal(h.msgs[0].len, 18);
        assert_memory_equal(h.msgs[0].data, "first-second-third", 18);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_true(f[0].fin);
        assert_int_equal(f[0].opcode, OP_PONG);
        assert_int_equal(f[0].len, 9);
        assert_memory_equal(f[0].payload, "ping data", 9);
        assert_false(ws_closed(h.ws));
        harness_free(&h);
    }
}

static void test_frame_text(void **state)
{
    const char payload[] = "h\xc3\xa9llo text";
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_TEXT, payload, strlen(payload), true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        assert_false(h.msgs[0].binary);
        assert_int_equal(h.msgs[0].len, strlen(payload));
        assert_memory_equal(h.msgs[0].data, payload, strlen(payload));
        harness_free(&h);
    }
}

static void test_frame_empty_and_several(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        size_t n = 0;
        n += client_frame(buf + n, true, OP_BINARY, "", 0, true);
        n += client_frame(buf + n, true, OP_BINARY, "one", 3, true);
        n += client_frame(buf + n, true, OP_TEXT, "two", 3, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 3);
        assert_int_equal(h.msgs[0].len, 0);
        assert_true(h.msgs[0].binary);
        assert_memory_equal(h.msgs[1].data, "one", 3);
        assert_true(h.msgs[1].binary);
        assert_memory_equal(h.msgs[2].data, "two", 3);
        assert_false(h.msgs[2].binary);
        harness_free(&h);
    }
}

static void test_frame_close_answered(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        const uint8_t close_payload[] = { 0x03, 0xe8, 'b', 'y', 'e' }; /* 1000 */
        size_t n = client_frame(buf, true, OP_CLOSE, close_payload, sizeof close_payload, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_true(ws_closed(h.ws));
        assert_int_equal(h.nmsgs, 0);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1000);
        /* nothing more goes out */
        assert_int_equal(ws_send_binary(h.ws, (const uint8_t *)"x", 1), -1);
        harness_free(&h);
    }
}

static void test_frame_unmasked_is_error(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_BINARY, "plain", 5, false);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 0);
        assert_true(ws_closed(h.ws));
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1002);
        harness_free(&h);
    }
}

static void test_frame_reserved_bits_are_error(void **state)
{
    harness h;
    harness_init(&h, 1024);
    uint8_t buf[64];
    size_t n = client_frame(buf, true, OP_BINARY, "rsv", 3, true);
    buf[0] |= 0x40;
    assert_int_equal(feed(&h, buf, n, 0), -1);
    assert_int_equal(h.nmsgs, 0);
    server_frame f[4];
    assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
    assert_close_frame(&f[0], 1002);
    harness_free(&h);
}

static void test_frame_oversized_message(void **state)
{
    uint8_t payload[40];
    memset(payload, 'z', sizeof payload);
    for (size_t c = 0; c < NCHUNKS; c++) {
        /* exactly max_message passes */
        harness h;
        harness_init(&h, 16);
        uint8_t buf[128];
        size_t n = client_frame(buf, true, OP_BINARY, payload, 16, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        harness_free(&h);

        /* one frame above it */
        harness_init(&h, 16);
        n = client_frame(buf, true, OP_BINARY, payload, 17, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 0);
        assert_true(ws_closed(h.ws));
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1009);
        harness_free(&h);

        /* fragments that add up to more */
        harness_init(&h, 16);
        n = client_frame(buf, false, OP_BINARY, payload, 10, true);
        n += client_frame(buf + n, true, OP_CONT, payload, 10, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 0);
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1009);
        harness_free(&h);
    }
}

static void test_send_binary_lengths(void **state)
{
    static const size_t sizes[] = { 0, 5, 125, 126, 300, 65535, 65536, 70000 };
    harness h;
    harness_init(&h, 1024);
    uint8_t *data = malloc(70000);
    assert_non_null(data);
    for (size_t i = 0; i < 70000; i++)
        data[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        assert_int_equal(ws_send_binary(h.ws, data, sizes[i]), 0);
    server_frame f[16];
    int nf = decode_frames(h.sent, h.sent_len, f, 16);
    assert_int_equal(nf, (int)(sizeof sizes / sizeof sizes[0]));
    for (int i = 0; i < nf; i++) {
        assert_true(f[i].fin);
        assert_int_equal(f[i].opcode, OP_BINARY);
        assert_int_equal(f[i].len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(f[i].payload, data, sizes[i]);
    }
    free(data);
    harness_free(&h);
}

static void test_server_close(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        assert_false(ws_closed(h.ws));
        assert_int_equal(ws_close(h.ws, 1001), 0);
        assert_true(ws_closed(h.ws));
        assert_int_equal(ws_send_binary(h.ws, (const uint8_t *)"late", 4), -1);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1001);
        /* a message in flight is still delivered, then the client's close
         * ends the handshake without a second close from us */
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_BINARY, "late msg", 8, true);
        const uint8_t close_payload[] = { 0x03, 0xe9 };
        n += client_frame(buf + n, true, OP_CLOSE, close_payload, 2, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 1);
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        harness_free(&h);
    }
}

static void test_reply_from_on_message(void **state)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        h.echo = true;
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_BINARY, "echo me", 7, true);
        n += client_frame(buf + n, true, OP_PING, "p", 1, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 2);
        int binary = f[0].opcode == OP_BINARY ? 0 : 1;
        assert_int_equal(f[binary].opcode, OP_BINARY);
        assert_int_equal(f[binary].len, 7);
        assert_memory_equal(f[binary].payload, "echo me", 7);
        assert_int_equal(f[1 - binary].opcode, OP_PONG);
        harness_free(&h);
    }
}

static void test_send_failure(void **state)
{
    harness h;
    harness_init(&h, 1024);
    h.fail_send = true;
    uint8_t buf[64];
    size_t n = client_frame(buf, true, OP_PING, "p", 1, true);
    assert_int_equal(feed(&h, buf, n, 0), -1);
    assert_true(ws_closed(h.ws));
    assert_int_equal(ws_send_binary(h.ws, (const uint8_t *)"x", 1), -1);
    assert_int_equal(feed(&h, buf, n, 0), -1);
    harness_free(&h);

    harness_init(&h, 1024);
    h.fail_send = true;
    assert_int_equal(ws_send_binary(h.ws, (const uint8_t *)"x", 1), -1);
    assert_true(ws_closed(h.ws));
    harness_free(&h);
}

/* Feeds one client frame to a fresh connection (in each chunk size) and
 * expects the link to fail with a close carrying code. */
static void expect_failure(const uint8_t *frames, size_t n, uint16_t code)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        assert_int_equal(feed(&h, frames, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 0);
        assert_true(ws_closed(h.ws));
        assert_int_equal(ws_conn_buffered(h.ws), 0);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], code);
        /* the link stays failed */
        assert_int_equal(ws_feed(h.ws, frames, n), -1);
        assert_int_equal(ws_send_binary(h.ws, (const uint8_t *)"x", 1), -1);
        harness_free(&h);
    }
}

static void test_text_utf8_valid(void **state)
{
    /* 2-, 3- and 4-byte sequences, the extremes of each range */
    static const char *const valid[] = {
        "",
        "plain ascii",
        "\xc2\x80 \xdf\xbf",                      /* U+0080, U+07FF */
        "\xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80", /* U+0800, U+D7FF, U+E000 */
        "\xef\xbf\xbf \xf0\x90\x80\x80",          /* U+FFFF, U+10000 */
        "\xf4\x8f\xbf\xbf",                       /* U+10FFFF */
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        for (size_t c = 0; c < NCHUNKS; c++) {
            harness h;
            harness_init(&h, 1024);
            uint8_t buf[64];
            size_t len = strlen(valid[i]);
            size_t n = client_frame(buf, true, OP_TEXT, valid[i], len, true);
            assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
            assert_int_equal(h.nmsgs, 1);
            assert_false(h.msgs[0].binary);
            assert_int_equal(h.msgs[0].len, len);
            assert_memory_equal(h.msgs[0].data, valid[i], len);
            assert_int_equal(h.sent_len, 0);
            harness_free(&h);
        }
    }

    /* a code point split across fragments, with a ping in between */
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t buf[64];
        size_t n = client_frame(buf, false, OP_TEXT, "a\xf0\x9f", 3, true);
        n += client_frame(buf + n, true, OP_PING, "", 0, true);
        n += client_frame(buf + n, true, OP_CONT, "\x98\x80z", 3, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        assert_false(h.msgs[0].binary);
        assert_int_equal(h.msgs[0].len, 6);
        assert_memory_equal(h.msgs[0].data, "a\xf0\x9f\x98\x80z", 6);
        harness_free(&h);
    }
}

static void test_text_utf8_invalid(void **state)
{
    static const char *const invalid[] = {
        "\x80",                 /* continuation byte first */
        "ab\xbf",
        "\xc0\x80",             /* overlong NUL */
        "\xc1\xbf",             /* overlong */
        "\xe0\x9f\xbf",         /* overlong 3-byte */
        "\xf0\x8f\xbf\xbf",     /* overlong 4-byte */
        "\xed\xa0\x80",         /* surrogate U+D800 */
        "\xed\xbf\xbf",         /* surrogate U+DFFF */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xf5\x80\x80\x80",
        "\xff",
        "\xc3",                 /* truncated at the end */
        "x\xe2\x82",
        "\xf0\x9f\x98",
        "\xc3(",                /* bad continuation */
        "\xe2\x28\xa1",
        "\xf0\x9f\x28\x80",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        uint8_t buf[64];
        size_t n = client_frame(buf, true, OP_TEXT, invalid[i], strlen(invalid[i]), true);
        expect_failure(buf, n, 1007);
    }
    /* the fault in a later fragment; binary messages are not checked */
    uint8_t buf[64];
    size_t n = client_frame(buf, false, OP_TEXT, "valid ", 6, true);
    n += client_frame(buf + n, true, OP_CONT, "\xed\xa0\x80", 3, true);
    expect_failure(buf, n, 1007);

    harness h;
    harness_init(&h, 1024);
    n = client_frame(buf, true, OP_BINARY, "\xff\xc0\x80", 3, true);
    assert_int_equal(feed(&h, buf, n, 0), 0);
    assert_int_equal(h.nmsgs, 1);
    assert_true(h.msgs[0].binary);
    harness_free(&h);
}

static void test_protocol_errors(void **state)
{
    uint8_t buf[512];
    uint8_t big[200];
    memset(big, 'p', sizeof big);
    size_t n;

    /* opcodes 3-7 and 0xb-0xf are reserved */
    static const uint8_t bad_ops[] = { 3, 7, 0xb, 0xf };
    for (size_t i = 0; i < sizeof bad_ops; i++) {
        n = client_frame(buf, true, bad_ops[i], "x", 1, true);
        expect_failure(buf, n, 1002);
    }
    /* control frames: more than 125 bytes, or fragmented */
    n = client_frame(buf, true, OP_PING, big, 126, true);
    expect_failure(buf, n, 1002);
    n = client_frame(buf, false, OP_PING, "p", 1, true);
    expect_failure(buf, n, 1002);
    n = client_frame(buf, false, OP_PONG, "p", 1, true);
    expect_failure(buf, n, 1002);
    /* a continuation with nothing to continue */
    n = client_frame(buf, true, OP_CONT, "x", 1, true);
    expect_failure(buf, n, 1002);
    n = client_frame(buf, false, OP_BINARY, "x", 1, true);
    n += client_frame(buf + n, true, OP_CONT, "y", 1, true);
    n += client_frame(buf + n, true, OP_CONT, "z", 1, true);
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 1);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1002);
        harness_free(&h);
    }
    /* a new data message while a fragmented one is open */
    n = client_frame(buf, false, OP_BINARY, "one", 3, true);
    n += client_frame(buf + n, true, OP_TEXT, "two", 3, true);
    expect_failure(buf, n, 1002);
    /* other reserved bits */
    n = client_frame(buf, true, OP_TEXT, "r", 1, true);
    buf[0] |= 0x10;
    expect_failure(buf, n, 1002);
    n = client_frame(buf, true, OP_PING, "r", 1, true);
    buf[0] |= 0x20;
    expect_failure(buf, n, 1002);
    /* a 64-bit length with its top bit set */
    n = 0;
    buf[n++] = 0x80 | OP_BINARY;
    buf[n++] = 0x80 | 127;
    buf[n++] = 0x80;
    for (int i = 0; i < 7; i++)
        buf[n++] = 0;
    for (int i = 0; i < 4; i++)
        buf[n++] = 0x11;
    expect_failure(buf, n, 1002);
    /* a 64-bit length above max_message: 1009 as soon as the header is in */
    buf[2] = 0x00;
    buf[5] = 0x01;
    expect_failure(buf, n, 1009);
}

static void test_close_payloads(void **state)
{
    uint8_t buf[256];
    size_t n;

    /* one byte, or a code that may not be sent */
    n = client_frame(buf, true, OP_CLOSE, "\x03", 1, true);
    expect_failure(buf, n, 1002);
    static const uint16_t bad_codes[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t p[2] = { (uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i] };
        n = client_frame(buf, true, OP_CLOSE, p, 2, true);
        expect_failure(buf, n, 1002);
    }
    /* a reason that is not UTF-8 */
    n = client_frame(buf, true, OP_CLOSE, "\x03\xe8\xc0\x80", 4, true);
    expect_failure(buf, n, 1007);

    /* valid codes are echoed */
    static const uint16_t good_codes[] = { 1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999 };
    for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        harness h;
        harness_init(&h, 1024);
        uint8_t p[] = { (uint8_t)(good_codes[i] >> 8), (uint8_t)good_codes[i], 0xc3, 0xa9 };
        n = client_frame(buf, true, OP_CLOSE, p, sizeof p, true);
        assert_int_equal(feed(&h, buf, n, 1), -1);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], good_codes[i]);
        harness_free(&h);
    }

    /* an empty close is answered with an empty close; what follows it is
     * not read */
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        harness_init(&h, 1024);
        n = client_frame(buf, true, OP_CLOSE, "", 0, true);
        n += client_frame(buf + n, true, OP_BINARY, "after", 5, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 0);
        assert_true(ws_closed(h.ws));
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_true(f[0].fin);
        assert_int_equal(f[0].opcode, OP_CLOSE);
        assert_int_equal(f[0].len, 0);
        assert_int_equal(ws_feed(h.ws, buf, n), -1);
        assert_int_equal(ws_close(h.ws, 1000), -1);
        harness_free(&h);
    }
}

/* A large message is reassembled in a buffer that is gone once it has been
 * delivered; an idle connection holds no buffer at all. */
static void test_message_buffer_released(void **state)
{
    enum { BIG = 200000 };
    static const size_t big_chunks[] = { 0, 1000, 4093 };
    uint8_t *payload = malloc(BIG);
    uint8_t *buf = malloc(BIG + 64);
    assert_non_null(payload);
    assert_non_null(buf);
    for (size_t i = 0; i < BIG; i++)
        payload[i] = (uint8_t)(i * 13 + 1);

    for (size_t c = 0; c < sizeof big_chunks / sizeof big_chunks[0]; c++) {
        harness h;
        harness_init(&h, BIG);
        assert_int_equal(ws_conn_buffered(h.ws), 0);

        /* one frame */
        size_t n = client_frame(buf, true, OP_BINARY, payload, BIG, true);
        assert_int_equal(feed(&h, buf, n, big_chunks[c]), 0);
        assert_int_equal(h.nmsgs, 1);
        assert_int_equal(h.msgs[0].len, BIG);
        assert_memory_equal(h.msgs[0].data, payload, BIG);
        assert_int_equal(ws_conn_buffered(h.ws), 0);

        /* three fragments */
        n = client_frame(buf, false, OP_BINARY, payload, 1000, true);
        n += client_frame(buf + n, false, OP_CONT, payload + 1000, 50000, true);
        n += client_frame(buf + n, true, OP_CONT, payload + 51000, BIG - 51000, true);
        assert_int_equal(feed(&h, buf, n, big_chunks[c]), 0);
        assert_int_equal(h.nmsgs, 2);
        assert_int_equal(h.msgs[1].len, BIG);
        assert_memory_equal(h.msgs[1].data, payload, BIG);
        assert_int_equal(ws_conn_buffered(h.ws), 0);
        harness_free(&h);
    }

    /* while a message is incomplete its bytes are held, no more than it has
     * announced */
    harness h;
    harness_init(&h, BIG);
    size_t n = client_frame(buf, true, OP_BINARY, payload, 5000, true);
    assert_int_equal(ws_feed(h.ws, buf, 3000), 0);
    assert_true(ws_conn_buffered(h.ws) > 0);
    assert_true(ws_conn_buffered(h.ws) <= 5000);
    assert_int_equal(ws_feed(h.ws, buf + 3000, n - 3000), 0);
    assert_int_equal(h.nmsgs, 1);
    assert_int_equal(ws_conn_buffered(h.ws), 0);

    /* a ping split across calls: its payload is held until answered */
    n = client_frame(buf, true, OP_PING, "split ping", 10, true);
    assert_int_equal(ws_feed(h.ws, buf, n - 4), 0);
    assert_int_equal(ws_conn_buffered(h.ws), 10);
    assert_int_equal(ws_feed(h.ws, buf + n - 4, 4), 0);
    assert_int_equal(ws_conn_buffered(h.ws), 0);
    server_frame f[4];
    assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
    assert_int_equal(f[0].opcode, OP_PONG);
    assert_memory_equal(f[0].payload, "split ping", 10);
    harness_free(&h);

    free(buf);
    free(payload);
}

static bool close_in_on_message; /* on_message of the next test closes */

static void on_message_close(void *ud, const uint8_t *data, size_t len, bool binary)
{
    harness *h = ud;
    on_message(ud, data, len, binary);
    if (close_in_on_message)
        assert_int_equal(ws_close(h->ws, 1000), 0);
}

/* ws_close from inside on_message: the close goes out at once, later
 * messages are still delivered, pings are no longer answered, and the
 * peer's close ends the link without a second close from us. */
static void test_close_from_on_message(void **state)
{
    static const ws_callbacks cb = { .on_message = on_message_close, .send = on_send };
    for (size_t c = 0; c < NCHUNKS; c++) {
        harness h;
        memset(&h, 0, sizeof h);
        h.ws = ws_conn_new(&cb, &h, 1024);
        assert_non_null(h.ws);
        close_in_on_message = true;
        uint8_t buf[128];
        size_t n = client_frame(buf, true, OP_BINARY, "first", 5, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), 0);
        close_in_on_message = false;
        assert_true(ws_closed(h.ws));
        n = client_frame(buf, true, OP_BINARY, "second", 6, true);
        n += client_frame(buf + n, true, OP_PING, "p", 1, true);
        n += client_frame(buf + n, true, OP_CLOSE, "\x03\xe8", 2, true);
        assert_int_equal(feed(&h, buf, n, chunks[c]), -1);
        assert_int_equal(h.nmsgs, 2);
        assert_memory_equal(h.msgs[1].data, "second", 6);
        server_frame f[4];
        assert_int_equal(decode_frames(h.sent, h.sent_len, f, 4), 1);
        assert_close_frame(&f[0], 1000);
        harness_free(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc_sample),
        cmocka_unit_test(test_handshake_valid),
        cmocka_unit_test(test_handshake_refuse_post),
        cmocka_unit_test(test_handshake_refuse_no_upgrade),
        cmocka_unit_test(test_handshake_refuse_version_8),
        cmocka_unit_test(test_handshake_refuse_wrong_path),
        cmocka_unit_test(test_handshake_refuse_missing_key),
        cmocka_unit_test(test_handshake_one_byte_pieces),
        cmocka_unit_test(test_handshake_oversized_head),
        cmocka_unit_test(test_frame_binary),
        cmocka_unit_test(test_frame_fragmented_with_ping),
        cmocka_unit_test(test_frame_text),
        cmocka_unit_test(test_frame_empty_and_several),
        cmocka_unit_test(test_frame_close_answered),
        cmocka_unit_test(test_frame_unmasked_is_error),
        cmocka_unit_test(test_frame_reserved_bits_are_error),
        cmocka_unit_test(test_frame_oversized_message),
        cmocka_unit_test(test_send_binary_lengths),
        cmocka_unit_test(test_server_close),
        cmocka_unit_test(test_reply_from_on_message),
        cmocka_unit_test(test_send_failure),
        cmocka_unit_test(test_text_utf8_valid),
        cmocka_unit_test(test_text_utf8_invalid),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_close_payloads),
        cmocka_unit_test(test_message_buffer_released),
        cmocka_unit_test(test_close_from_on_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
