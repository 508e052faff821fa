/* WebSocket server side (RFC 6455) for the client gate: validation of the
 * HTTP upgrade and its 101 answer, and framing through wslay's event API
 * (binary messages, ping/pong and close handled, size limit enforced).
 * Transport-agnostic: bytes come in through ws_feed and go out through the
 * send callback. */
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
    /* A complete data message. Text messages are reported with binary=false. */
    void (*on_message)(void *ud, const uint8_t *data, size_t len, bool binary);
    /* Bytes to write to the socket; returns 0, or -1 to fail the link. */
    int (*send)(void *ud, const uint8_t *data, size_t len);
} ws_callbacks;

/* max_message bounds one reassembled message. */
ws_conn *ws_conn_new(const ws_callbacks *cb, void *ud, size_t max_message);
void ws_conn_free(ws_conn *ws);
/* Feeds received bytes. Returns 0, or -1 when the link must be closed
 * (protocol error, oversized message, or the close handshake finished). */
int ws_feed(ws_conn *ws, const uint8_t *data, size_t len);
/* Queues one binary message and flushes it through the send callback. */
int ws_send_binary(ws_conn *ws, const uint8_t *data, size_t len);
/* Sends a close frame with a status code. */
int ws_close(ws_conn *ws, uint16_t status);
/* True once a close frame was received or sent and nothing more will flow. */
bool ws_closed(const ws_conn *ws);

#endif
