/* WebSocket server side (see ws.h): the upgrade check and its 101 answer,
 * and a wslay event context fed from memory.
 *
 * Framing notes:
 *  - ws_feed hands its bytes to wslay through the recv callback (which says
 *    WOULDBLOCK once they are used up), then flushes whatever wslay queued
 *    (pongs, close replies) through the send callback;
 *  - pings, close frames, masking checks and the message size limit are
 *    wslay's (an oversized message gets close 1009, a protocol violation
 *    close 1002; either way the link is over once that close is sent);
 *  - on_message may call ws_send_binary or ws_close: the frames are queued
 *    and flushed when ws_feed returns from wslay. It must not free the
 *    connection.
 *  - ws_closed is true once a close frame was sent or received (or the link
 *    failed): nothing more may be sent, and the caller may drop the socket
 *    after writing out what it holds. */
#include "ws.h"

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- handshake ---------------------------------------------------------- */

void ws_accept_key(const char *key, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
             EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (ok)
        EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars + NUL */
}

/* True if the comma-separated header value lists token (any case). */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p = end;
    }
    return false;
}

static bool is_b64(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* A base64 encoding of 16 bytes: 22 characters and "==". */
static bool valid_key(const char *key)
{
    if (strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++) {
        if (!is_b64(key[i]))
            return false;
    }
    return true;
}

/* Faults are reported in this order: wrong path (404), not a GET or not
 * an upgrade to websocket (400), version other than 13 (426; the caller's
 * answer should carry "Sec-WebSocket-Version: 13"), bad key (400). A
 * Sec-WebSocket-Protocol offer is ignored: no subprotocol is selected. A
 * response that does not fit resp_cap, or a hashing failure, gives 500. */
int ws_handshake_response(const http_request *req, const char *path, char *resp, size_t resp_cap, int *status)
{
    int dummy;
    if (!status)
        status = &dummy;
    *status = 400;
    if (strcmp(req->path, path) != 0) {
        *status = 404;
        return -1;
    }
    if (strcmp(req->method, "GET") != 0)
        return -1;
    const char *upgrade = http_request_header(req, "upgrade");
    const char *connection = http_request_header(req, "connection");
    if (!upgrade || !has_token(upgrade, "websocket"))
        return -1;
    if (!connection || !has_token(connection, "upgrade"))
        return -1;
    const char *version = http_request_header(req, "sec-websocket-version");
    if (!version || strcmp(version, "13") != 0) {
        *status = 426;
        return -1;
    }
    const char *key = http_request_header(req, "sec-websocket-key");
    if (!key || !valid_key(key))
        return -1;

    char accept[29];
    ws_accept_key(key, accept);
    if (accept[0] == '\0') {
        *status = 500;
        return -1;
    }
    int n = snprintf(resp, resp_cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "\r\n",
                     accept);
    if (n < 0 || (size_t)n >= resp_cap) {
        *status = 500;
        return -1;
    }
    *status = 101;
    return n;
}

/* ---- framing ------------------------------------------------------------ */

struct ws_conn {
    wslay_event_context_ptr ctx;
    ws_callbacks cb;
    void *ud;
    const uint8_t *in;   /* bytes of the ws_feed call in progress */
    size_t in_len;
    bool in_recv;        /* inside wslay_event_recv: defer flushing */
    bool failed;
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    ws_conn *ws = user_data;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    ws_conn *ws = user_data;
    if (!ws->cb.send || ws->cb.send(ws->ud, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_msg_recv_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    ws_conn *ws = user_data;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* ping, pong and close are wslay's business */
    if (ws->cb.on_message) {
        static const uint8_t empty[1];
        ws->cb.on_message(ws->ud, arg->msg ? arg->msg : empty, arg->msg_length,
                          arg->opcode == WSLAY_BINARY_FRAME);
    }
}

ws_conn *ws_conn_new(const ws_callbacks *cb, void *ud, size_t max_message)
{
    ws_conn *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->cb = *cb;
    ws->ud = ud;
    struct wslay_event_callbacks wcb = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_msg_recv_cb,
    };
    if (wslay_event_context_server_init(&ws->ctx, &wcb, ws) != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, max_message);
    return ws;
}

void ws_conn_free(ws_conn *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

/* Writes out queued frames; -1 if the send callback failed. */
static int flush(ws_conn *ws)
{
    if (ws->failed)
        return -1;
    if (wslay_event_send(ws->ctx) != 0) {
        ws->failed = true;
        return -1;
    }
    return 0;
}

int ws_feed(ws_conn *ws, const uint8_t *data, size_t len)
{
    if (ws->failed)
        return -1;
    ws->in = data;
    ws->in_len = len;
    ws->in_recv = true;
    int r = wslay_event_recv(ws->ctx);
    ws->in_recv = false;
    ws->in = NULL;
    ws->in_len = 0;
    if (r != 0) {
        ws->failed = true;
        return -1;
    }
    if (flush(ws) != 0)
        return -1;
    if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))
        return -1; /* close handshake done, or failed after our close */
    return 0;
}

int ws_send_binary(ws_conn *ws, const uint8_t *data, size_t len)
{
    if (ws->failed)
        return -1;
    struct wslay_event_msg msg = {
        .opcode = WSLAY_BINARY_FRAME,
        .msg = data,
        .msg_length = len,
    };
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0)
        return -1;
    return ws->in_recv ? 0 : flush(ws);
}

int ws_close(ws_conn *ws, uint16_t status)
{
    if (ws->failed)
        return -1;
    if (wslay_event_queue_close(ws->ctx, status, NULL, 0) != 0)
        return -1;
    return ws->in_recv ? 0 : flush(ws);
}

bool ws_closed(const ws_conn *ws)
{
    return ws->failed || wslay_event_get_close_sent(ws->ctx) ||
           wslay_event_get_close_received(ws->ctx) || !wslay_event_get_read_enabled(ws->ctx);
}
