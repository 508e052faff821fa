/* WebSocket server side (RFC 6455) for the client gate: validation of the
 * HTTP upgrade and its 101 answer, and our own framing (binary and text
 * messages, fragmentation, ping/pong and close handled, size limit
 * enforced; see ws.c for why it is not a library's). An idle connection is
 * one small struct with no buffer. Transport-agnostic: bytes come in
 * through ws_feed and go out through the send callback. */
#ifndef RTM_WS_H
#define RTM_WS_H

#include "http_request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Validates an upgrade request for the given path (method GET, Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Version: 13, a 16-byte
 * base64 Sec-WebSocket-Key). On success writes the complete 101 response
 * into resp and returns its length; otherwise returns -1 and sets *status
 * (400, 404, 426) for the error response the caller sends. */
int ws_handshake_response(const http_request *req, const char *path, char *resp, size_t resp_cap, int *status);
/* Sec-WebSocket-Accept for a key: base64(sha1(key + GUID)), 28 chars + NUL. */
void ws_accept_key(const char *key, char out[29]);

typedef struct ws_conn ws_conn;

typedef struct ws_callbacks {
    /* A complete data message. Text messages (valid UTF-8, else the link
     * fails with close 1007) are reported with binary=false. data is valid
     * during the call only. May call ws_send_binary and ws_close, but must
     * not free the connection. */
    void (*on_message)(void *ud, const uint8_t *data, size_t len, bool binary);
    /* Bytes to write to the socket; returns 0, or -1 to fail the link. */
    int (*send)(void *ud, const uint8_t *data, size_t len);
} ws_callbacks;

/* max_message bounds one reassembled message (at most UINT32_MAX). cb is
 * kept, not copied: it must outlive the connection (a static table). */
ws_conn *ws_conn_new(const ws_callbacks *cb, void *ud, size_t max_message);
void ws_conn_free(ws_conn *ws);
/* Changes the bound of one reassembled message (rtmd raises it once the
 * peer logged in); never below the bytes of the message already open. */
void ws_set_max_message(ws_conn *ws, size_t max_message);
/* Feeds received bytes (frames may be split anywhere). Pings are answered
 * with a pong carrying the same payload, a close with a close. Returns 0,
 * or -1 when the link must be closed: the close handshake finished, or a
 * fault of the peer was answered with a close (1002 protocol error, 1007
 * invalid UTF-8, 1009 message above max_message), or sending failed. */
int ws_feed(ws_conn *ws, const uint8_t *data, size_t len);
/* Writes one binary message (one frame) through the send callback; -1
 * after a close or when sending fails. */
int ws_send_binary(ws_conn *ws, const uint8_t *data, size_t len);
/* Sends a close frame with a status code. */
int ws_close(ws_conn *ws, uint16_t status);
/* True once a close frame was received or sent and nothing more will flow. */
bool ws_closed(const ws_conn *ws);
/* Heap bytes held for input in progress (a partial message or control
 * frame); 0 between messages. */
size_t ws_conn_buffered(const ws_conn *ws);

#endif
