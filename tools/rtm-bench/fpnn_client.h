/* fpnn_client.h — a lean FPNN client for many connections on one libuv
 * loop (rtm-bench's transport to rtmd). Owns sockets, output batching (one
 * write per connection per loop turn), the WebSocket client side (upgrade
 * request, masked frames, ping/pong), pipelined quests matched to answers
 * through one seq table shared by every connection, and automatic empty
 * answers to the server's twoway quests (pushes, ping).
 *
 * Memory: an idle open connection costs one fc_conn (uv_tcp_t included); its
 * input and output buffers exist only while bytes are pending. */
#ifndef RTM_BENCH_FPNN_CLIENT_H
#define RTM_BENCH_FPNN_CLIENT_H

#include "rtm/fpnn.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct fc_ctx fc_ctx;
typedef struct fc_conn fc_conn;

/* status: 0 = answer received (look at ans->status), else a negative libuv
 * error or FPNN_EC_CORE_CONNECTION_CLOSED when the link went away first
 * (ans is NULL then). */
typedef void (*fc_answer_cb)(fc_conn *c, const fpnn_packet *ans, int status, void *arg, uint64_t cookie);

typedef struct fc_callbacks {
    /* TCP connected (and, for WebSocket, the upgrade answered 101), status 0.
     * A failure (status != 0) is reported here too and on_close follows. */
    void (*on_open)(fc_conn *c, int status);
    /* A quest from the server (oneway or twoway). Twoway quests are answered
     * with an empty map after this returns. May be NULL. */
    void (*on_quest)(fc_conn *c, const fpnn_packet *q);
    /* The link closed (status 0 after fc_close, else why). The fc_conn is
     * freed after this returns. */
    void (*on_close)(fc_conn *c, int status);
} fc_callbacks;

fc_ctx *fc_ctx_new(uv_loop_t *loop, const fc_callbacks *cb, size_t max_packet);
/* Closes nothing; call after every connection reported on_close. */
void fc_ctx_free(fc_ctx *ctx);

/* Starts a connection. ws: use WebSocket (path, host header from addr).
 * src: local address to bind first (port 0), or NULL. Returns NULL on an
 * immediate failure (no callback follows). */
fc_conn *fc_connect(fc_ctx *ctx, const struct sockaddr *addr, const struct sockaddr *src, int ws,
                    const char *ws_path, void *user);
void *fc_user(const fc_conn *c);
void fc_set_user(fc_conn *c, void *user);
/* Starts closing; on_close follows, pending quests fail first. */
void fc_close(fc_conn *c);
int fc_is_open(const fc_conn *c);

/* Queues a twoway msgpack quest (sent at the end of this loop turn). cb is
 * called exactly once unless this returns non-zero. */
int fc_quest(fc_conn *c, const char *method, const uint8_t *payload, size_t len, fc_answer_cb cb, void *arg,
             uint64_t cookie);
/* Quests sent but not answered on this connection. */
unsigned fc_pending(const fc_conn *c);

#endif
