/* target_redis.c — rtm-bench's Redis pub/sub target: hiredis asynchronous
 * contexts attached to the shared libuv loop with hiredis' libuv adapter
 * (hiredis/adapters/libuv.h), one channel per room.
 *
 * Shape and why:
 * - A connection that has sent SUBSCRIBE can only (un)subscribe and ping, so
 *   a client has up to two contexts: `a`, opened by connect(), and `b`, a
 *   publisher opened on the first publish once `a` has subscribed (a client
 *   that never subscribes publishes on `a`). hiredis queues commands on a
 *   context that is still connecting, so the first publish on `b` goes out
 *   as soon as it is up. Both bind to the engine's source address.
 * - Deliveries: the SUBSCRIBE callback fires for the "subscribe"
 *   confirmation (bench_subscribed) and for every "message" push
 *   (bench_delivered with the payload as received).
 * - Acks: PUBLISH is answered by the server (the number of receivers), so a
 *   publish is acked by its reply, with the cookie as the callback's
 *   privdata; a reply that is an error, or none (the context was freed),
 *   acks with a failure.
 * - Teardown: redisAsyncFree answers every pending callback with no reply
 *   (the acks fail), stops the adapter's poll handle and closes the socket;
 *   bench_closed follows on a later loop turn (an idle handle), after any
 *   free hiredis had to defer because it was inside one of its callbacks.
 *   bench_connected is deferred the same way: the engine may close a client
 *   from inside it (churn), and hiredis 0.14 does not survive a free inside
 *   its connect callback.
 * - Connected means the server answered a PING on `a` (like CONNACK for
 *   MQTT and PONG for NATS): a client the server refuses fails to connect. */
#include "bench.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { RD_FREE, RD_CONNECTING, RD_READY, RD_CLOSING };

typedef struct rd_client {
    redisAsyncContext *a;    /* first connection; subscriber once subscribed */
    redisAsyncContext *b;    /* publisher once `a` has subscribed */
    uint32_t gen;            /* bumped at every teardown */
    int idx;
    int close_status;
    uint8_t state;
    uint8_t a_sub;           /* `a` has sent SUBSCRIBE */
    uint8_t connected;       /* bench_connected(i, 0) was reported */
} rd_client;

enum { DONE_CONNECTED, DONE_CONNECT_FAILED, DONE_CLOSED };

typedef struct rd_done {
    int idx;
    int status;
    int kind;
    uint32_t gen;            /* DONE_CONNECTED: only if still this connection */
} rd_done;

static struct {
    uv_loop_t *loop;
    const bench_opts *o;
    rd_client *c;
    int n;
    int port;
    rd_done *done;           /* completions to report on the next turn */
    int ndone, capdone;
    uv_idle_t idle;
    int idle_on;
    int shutting;
} rd;

static void rd_teardown(rd_client *c, int status);
static void rd_on_ping(redisAsyncContext *ac, void *r, void *privdata);

static void rd_idle_cb(uv_idle_t *h)
{
    /* Reports may reconnect the slot and queue new completions: take only
     * what is there now. */
    int n = rd.ndone;
    for (int k = 0; k < n; k++) {
        rd_done d = rd.done[k];
        rd_client *c = &rd.c[d.idx];
        if (d.kind == DONE_CONNECTED) {
            if (rd.shutting || c->gen != d.gen || c->state != RD_READY)
                continue;   /* torn down meanwhile: reported as a failure */
            c->connected = 1;
            bench_connected(d.idx, 0);
            continue;
        }
        c->state = RD_FREE;
        if (rd.shutting)
            continue;
        if (d.kind == DONE_CLOSED)
            bench_closed(d.idx, d.status);
        else
            bench_connected(d.idx, d.status ? d.status : -1);
    }
    memmove(rd.done, rd.done + n, (size_t)(rd.ndone - n) * sizeof *rd.done);
    rd.ndone -= n;
    if (rd.ndone == 0)
        uv_idle_stop(&rd.idle);
}

static void rd_done_push(rd_done d)
{
    if (rd.ndone == rd.capdone) {
        int ncap = rd.capdone * 2;
        rd_done *nv = realloc(rd.done, (size_t)ncap * sizeof *nv);
        if (!nv) {
            fprintf(stderr, "rtm-bench: redis: out of memory\n");
            abort();
        }
        rd.done = nv;
        rd.capdone = ncap;
    }
    rd.done[rd.ndone++] = d;
    if (rd.ndone == 1)
        uv_idle_start(&rd.idle, rd_idle_cb);
}

static void rd_free_ctx(redisAsyncContext **pac)
{
    redisAsyncContext *ac = *pac;
    *pac = NULL;
    if (ac)
        redisAsyncFree(ac);   /* pending callbacks run with reply NULL */
}

/* Ends the client in any live state; the report follows on the next turn. */
static void rd_teardown(rd_client *c, int status)
{
    if (c->state != RD_CONNECTING && c->state != RD_READY)
        return;
    c->state = RD_CLOSING;
    c->close_status = status;
    c->gen++;
    rd_free_ctx(&c->b);
    rd_free_ctx(&c->a);
    rd_done_push((rd_done){ .idx = c->idx, .status = status,
                            .kind = c->connected ? DONE_CLOSED : DONE_CONNECT_FAILED });
    c->connected = 0;
}

/* ---- hiredis callbacks --------------------------------------------------- */

static void rd_on_connect(const redisAsyncContext *ac, int status)
{
    rd_client *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        bench_log(1, "redis: client %d connect: %s", c->idx, ac->errstr);
        if (c->a == ac)
            c->a = NULL;
        if (c->b == ac)
            c->b = NULL;
        rd_teardown(c, -1);
        return;
    }
    if (ac == c->a && c->state == RD_CONNECTING) {
        /* ready once the server has answered a PING: a refused client
         * (protected mode, maxclients) fails here, not later */
        if (redisAsyncCommand(c->a, rd_on_ping, NULL, "PING") != REDIS_OK)
            rd_teardown(c, -1);
    }
}

static void rd_on_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    rd_client *c = ac->data;
    redisReply *reply = r;
    if (!reply || c->state != RD_CONNECTING || ac != c->a)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        bench_log(1, "redis: client %d refused: %.80s", c->idx, reply->str);
        rd_teardown(c, -1);
        return;
    }
    /* Reported on the next turn, like every completion here: the engine
     * may close the client from bench_connected() (churn). */
    c->state = RD_READY;
    rd_done_push((rd_done){ .idx = c->idx, .kind = DONE_CONNECTED, .gen = c->gen });
}

static void rd_on_disconnect(const redisAsyncContext *ac, int status)
{
    rd_client *c = ac->data;
    /* freed by hiredis after this callback, whoever asked for it */
    if (c->a == ac)
        c->a = NULL;
    if (c->b == ac)
        c->b = NULL;
    if (c->state == RD_CONNECTING || c->state == RD_READY) {
        bench_log(1, "redis: client %d disconnected: %.80s", c->idx,
                  ac->errstr ? ac->errstr : "");
        rd_teardown(c, -1);
    }
}

static void rd_on_publish(redisAsyncContext *ac, void *r, void *privdata)
{
    rd_client *c = ac->data;
    redisReply *reply = r;
    int ok = reply && reply->type == REDIS_REPLY_INTEGER;
    if (!c)
        return;
    bench_acked(c->idx, (uint64_t)(uintptr_t)privdata, ok ? 0 : -1);
}

static void rd_on_sub(redisAsyncContext *ac, void *r, void *privdata)
{
    rd_client *c = ac->data;
    redisReply *reply = r;
    if (!reply || c->state != RD_READY)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        const char *kind = reply->element[0]->str;
        if (strcmp(kind, "message") == 0) {
            redisReply *p = reply->element[2];
            bench_delivered(c->idx, p->str, p->len);
        } else if (strcmp(kind, "subscribe") == 0) {
            bench_subscribed(c->idx, 0);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        bench_subscribed(c->idx, -1);
    }
}

static redisAsyncContext *rd_open(rd_client *c)
{
    redisAsyncContext *ac = redisAsyncConnectBind(rd.o->host, rd.port,
                                                  bench_source_addr_str(c->idx));
    if (!ac)
        return NULL;
    if (ac->err) {
        bench_log(1, "redis: client %d connect: %s", c->idx, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = c;
    /* attach first: setting the connect callback asks for a write event */
    if (redisLibuvAttach(ac, rd.loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, rd_on_connect);
    redisAsyncSetDisconnectCallback(ac, rd_on_disconnect);
    return ac;
}

/* ---- the target interface ---------------------------------------------- */

static int rd_init(uv_loop_t *loop, const bench_opts *o, int nclients)
{
    memset(&rd, 0, sizeof rd);
    rd.loop = loop;
    rd.o = o;
    rd.n = nclients;
    rd.port = o->port ? o->port : 6379;
    rd.c = calloc((size_t)(nclients > 0 ? nclients : 1), sizeof *rd.c);
    rd.capdone = nclients > 0 ? 2 * nclients : 2;
    rd.done = calloc((size_t)rd.capdone, sizeof *rd.done);
    if (!rd.c || !rd.done)
        return -1;
    for (int i = 0; i < nclients; i++)
        rd.c[i].idx = i;
    uv_idle_init(loop, &rd.idle);
    rd.idle_on = 1;
    return 0;
}

static int rd_connect(int i)
{
    rd_client *c = &rd.c[i];
    if (c->state != RD_FREE)
        return -1;
    c->a_sub = 0;
    c->connected = 0;
    c->close_status = 0;
    c->a = rd_open(c);
    if (!c->a)
        return -1;
    c->state = RD_CONNECTING;
    return 0;
}

static int rd_subscribe(int i, uint32_t topic)
{
    rd_client *c = &rd.c[i];
    if (c->state != RD_READY || !c->a)
        return -1;
    if (redisAsyncCommand(c->a, rd_on_sub, NULL, "SUBSCRIBE %s",
                          bench_topic_name(topic)) != REDIS_OK)
        return -1;
    c->a_sub = 1;
    return 0;
}

static int rd_publish(int i, uint32_t topic, const void *data, size_t len, uint64_t cookie)
{
    rd_client *c = &rd.c[i];
    if (c->state != RD_READY)
        return -1;
    redisAsyncContext *ac = c->a;
    if (c->a_sub) {
        if (!c->b && !(c->b = rd_open(c)))
            return -1;
        ac = c->b;
    }
    if (!ac)
        return -1;
    if (redisAsyncCommand(ac, rd_on_publish, (void *)(uintptr_t)cookie, "PUBLISH %s %b",
                          bench_topic_name(topic), data, len) != REDIS_OK)
        return -1;
    return 0;
}

static void rd_close(int i)
{
    rd_teardown(&rd.c[i], 0);
}

static void rd_shutdown(void)
{
    rd.shutting = 1;
    for (int i = 0; i < rd.n; i++)
        rd_teardown(&rd.c[i], -1);
    uv_run(rd.loop, UV_RUN_NOWAIT);   /* adapter handles close, idle drains */
    if (rd.idle_on) {
        uv_idle_stop(&rd.idle);
        uv_close((uv_handle_t *)&rd.idle, NULL);
        uv_run(rd.loop, UV_RUN_NOWAIT);
        rd.idle_on = 0;
    }
    free(rd.done);
    free(rd.c);
    memset(&rd, 0, sizeof rd);
}

const bench_target bench_target_redis = {
    .name = "redis",
    .caps = BENCH_CAP_PUB_ACK,
    .init = rd_init,
    .prepare = NULL,
    .connect = rd_connect,
    .subscribe = rd_subscribe,
    .publish = rd_publish,
    .send_p2p = NULL,
    .close = rd_close,
    .shutdown = rd_shutdown,
};
