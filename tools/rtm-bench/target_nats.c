/* target_nats.c — rtm-bench's NATS target: libnats connections attached to
 * the shared libuv loop through libnats' own libuv adapter
 * (nats/adapters/libuv.h), one subject per room, echo off (NoEcho).
 *
 * Shape and why:
 * - Sockets: natsOptions_SetEventLoop with the adapter's callbacks, after
 *   natsLibuv_Init() and natsLibuv_SetThreadLocalLoop() on the loop thread,
 *   so the adapter polls every socket from the loop and reads happen there.
 *   SendAsap is on: each publish asks the adapter for a writable event
 *   instead of waking a flusher thread, and no flusher thread is created per
 *   connection. Reconnect is off; a lost connection is reported as closed.
 * - Connect: natsConnection_Connect is synchronous (TCP connect, INFO,
 *   CONNECT, PING/PONG) and must run on the loop thread for the adapter's
 *   first attach, so connects are serial. libnats cannot bind a source
 *   address: --source-addrs is ignored here.
 * - Delivery: libnats hands messages of asynchronous subscriptions to a
 *   delivery thread, never to the loop. All subscriptions share the global
 *   delivery pool (one thread); its callback only queues (client, message)
 *   under a mutex and wakes the loop (uv_async), and the loop reports them
 *   with bench_delivered(), so the engine is only ever called on the loop
 *   thread. The closed-connection callback (another libnats thread) takes the
 *   same path. Entries carry the client's generation so that nothing from a
 *   closed connection reaches a reused slot.
 * - Acks: NATS has no publish ack. A publish is acked as soon as libnats
 *   holds at most NT_ACK_BUFFERED bytes not yet written; beyond that the
 *   cookies wait in a FIFO (peer_fifo.h) and a uv_check handle acks them once
 *   the adapter's write events have drained the buffer, so TCP holds a fast
 *   sender back as it does for the other targets. The socket's send buffer
 *   is capped (NT_SNDBUF, set in nt_attach) for the same reason as in
 *   target_mosquitto.c: a bounded backlog between "acked" and the server. */
#include "bench.h"
#include "peer_fifo.h"

#include <nats/nats.h>
#include <nats/adapters/libuv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NT_ACK_BUFFERED (32 * 1024)
#define NT_IO_BUF       8192
#define NT_SNDBUF       (64 * 1024)

enum { NT_FREE, NT_READY, NT_CLOSING };
enum { EV_MSG, EV_CONNECTED, EV_SUBSCRIBED, EV_CLOSED_LOCAL, EV_CLOSED_REMOTE };

typedef struct nt_client {
    natsConnection *nc;
    natsSubscription **subs;
    int nsubs, capsubs;
    peer_fifo acks;          /* cookies waiting for the write buffer to drain */
    uint32_t gen;            /* bumped at every close */
    int idx;
    uint8_t state;
    uint8_t blocked;         /* in nt.blocked */
} nt_client;

typedef struct nt_event {
    natsMsg *msg;
    int idx;
    uint32_t gen;
    int type;
} nt_event;

typedef struct nt_queue {
    nt_event *v;
    size_t n, cap;
} nt_queue;

static struct {
    uv_loop_t *loop;
    const bench_opts *o;
    nt_client *c;
    int n;
    natsOptions *opts;
    char url[128];
    int *blocked;            /* clients with cookies waiting */
    int nblocked;
    uv_check_t check;
    uv_async_t async;
    uv_mutex_t mu;           /* guards in */
    nt_queue in;             /* filled by libnats threads and the loop */
    nt_queue out;            /* being reported by the loop */
    int handles_on;
    int shutting;
} nt;

static uintptr_t nt_pack(int idx, uint32_t gen)
{
    return ((uintptr_t)gen << 32) | (uint32_t)idx;
}

/* Any thread. Returns 0, or -1 when out of memory (the entry is lost). */
static int nt_post(int type, int idx, uint32_t gen, natsMsg *msg)
{
    int rc = 0, wake;
    uv_mutex_lock(&nt.mu);
    if (nt.in.n == nt.in.cap) {
        size_t ncap = nt.in.cap ? nt.in.cap * 2 : 1024;
        nt_event *nv = realloc(nt.in.v, ncap * sizeof *nv);
        if (!nv) {
            uv_mutex_unlock(&nt.mu);
            return -1;
        }
        nt.in.v = nv;
        nt.in.cap = ncap;
    }
    wake = nt.in.n == 0;
    nt.in.v[nt.in.n++] = (nt_event){ .msg = msg, .idx = idx, .gen = gen, .type = type };
    uv_mutex_unlock(&nt.mu);
    if (wake)
        uv_async_send(&nt.async);
    return rc;
}

/* Delivery pool thread. */
static void nt_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    uintptr_t p = (uintptr_t)closure;
    if (nt_post(EV_MSG, (int)(uint32_t)p, (uint32_t)(p >> 32), msg) != 0)
        natsMsg_Destroy(msg);
}

/* libnats' callback thread. */
static void nt_on_closed(natsConnection *nc, void *closure)
{
    uintptr_t p = (uintptr_t)closure;
    nt_post(EV_CLOSED_REMOTE, (int)(uint32_t)p, (uint32_t)(p >> 32), NULL);
}

/* Closes the connection of a client in any live state; acks what waits. */
static void nt_teardown(nt_client *c, int status)
{
    c->state = NT_CLOSING;
    c->gen++;
    while (c->acks.count)
        bench_acked(c->idx, peer_fifo_pop(&c->acks), status ? status : -1);
    if (c->nc)
        natsConnection_Close(c->nc);   /* the adapter detaches on the loop */
    for (int k = 0; k < c->nsubs; k++)
        natsSubscription_Destroy(c->subs[k]);
    c->nsubs = 0;
    if (c->nc)
        natsConnection_Destroy(c->nc);
    c->nc = NULL;
}

static void nt_async_cb(uv_async_t *h)
{
    /* Swap the queues; bounded: only what was queued when we looked. */
    uv_mutex_lock(&nt.mu);
    nt_queue t = nt.out;
    nt.out = nt.in;
    nt.in = t;
    nt.in.n = 0;
    uv_mutex_unlock(&nt.mu);

    for (size_t k = 0; k < nt.out.n; k++) {
        nt_event *e = &nt.out.v[k];
        nt_client *c = (e->idx >= 0 && e->idx < nt.n) ? &nt.c[e->idx] : NULL;
        int live = c && !nt.shutting && c->gen == e->gen;
        switch (e->type) {
        case EV_MSG:
            if (live && c->state == NT_READY)
                bench_delivered(c->idx, natsMsg_GetData(e->msg),
                                (size_t)natsMsg_GetDataLength(e->msg));
            natsMsg_Destroy(e->msg);
            break;
        case EV_CONNECTED:
            if (live && c->state == NT_READY)
                bench_connected(c->idx, 0);
            break;
        case EV_SUBSCRIBED:
            if (live && c->state == NT_READY)
                bench_subscribed(c->idx, 0);
            break;
        case EV_CLOSED_LOCAL:
            /* gen was bumped by the close: match the new one */
            if (c && !nt.shutting && c->gen == e->gen && c->state == NT_CLOSING) {
                c->state = NT_FREE;
                bench_closed(c->idx, 0);
            }
            break;
        case EV_CLOSED_REMOTE:
            if (live && c->state == NT_READY) {
                bench_log(1, "nats: client %d closed by the server", c->idx);
                nt_teardown(c, -1);
                c->state = NT_FREE;
                bench_closed(c->idx, -1);
            }
            break;
        }
    }
    nt.out.n = 0;
}

/* After each poll phase: ack what waited once libnats' buffer drained. An
 * ack may make the engine publish again on the same client; that publish
 * queues behind the cookies being acked (the client stays in the list, so
 * nothing is appended during the walk) and is acked on a later turn. */
static void nt_check_cb(uv_check_t *h)
{
    int n = nt.nblocked, keep = 0;
    for (int k = 0; k < n; k++) {
        nt_client *c = &nt.c[nt.blocked[k]];
        if (c->state != NT_READY || !c->acks.count) {
            c->blocked = 0;
            continue;
        }
        int buffered = natsConnection_Buffered(c->nc);
        if (buffered >= 0 && buffered <= NT_ACK_BUFFERED) {
            uint32_t m = c->acks.count;
            while (m-- && c->acks.count && c->state == NT_READY)
                bench_acked(c->idx, peer_fifo_pop(&c->acks), 0);
        }
        if (c->state == NT_READY && c->acks.count)
            nt.blocked[keep++] = c->idx;
        else
            c->blocked = 0;
    }
    /* entries appended during the walk (none expected) move down too */
    for (int k = n; k < nt.nblocked; k++)
        nt.blocked[keep++] = nt.blocked[k];
    nt.nblocked = keep;
    if (nt.nblocked == 0)
        uv_check_stop(&nt.check);
}

static void nt_block(nt_client *c)
{
    if (c->blocked)
        return;
    c->blocked = 1;
    nt.blocked[nt.nblocked++] = c->idx;   /* capacity n: each client once */
    if (nt.nblocked == 1)
        uv_check_start(&nt.check, nt_check_cb);
}

/* The adapter's attach, plus the send-buffer cap on the new socket. */
static natsStatus nt_attach(void **userData, void *loop, natsConnection *nc, natsSock socket)
{
    int sndbuf = NT_SNDBUF;
    setsockopt(socket, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    return natsLibuv_Attach(userData, loop, nc, socket);
}

/* ---- the target interface ---------------------------------------------- */

static int nt_init(uv_loop_t *loop, const bench_opts *o, int nclients)
{
    memset(&nt, 0, sizeof nt);
    nt.loop = loop;
    nt.o = o;
    nt.n = nclients;
    nt.c = calloc((size_t)(nclients > 0 ? nclients : 1), sizeof *nt.c);
    nt.blocked = calloc((size_t)(nclients > 0 ? nclients : 1), sizeof *nt.blocked);
    if (!nt.c || !nt.blocked)
        return -1;
    for (int i = 0; i < nclients; i++)
        nt.c[i].idx = i;
    snprintf(nt.url, sizeof nt.url, "nats://%s:%d", o->host, o->port ? o->port : 4222);

    /* The adapter needs to know which thread runs the loop: this one. */
    natsLibuv_Init();
    natsLibuv_SetThreadLocalLoop(loop);

    if (uv_mutex_init(&nt.mu) != 0)
        return -1;
    uv_async_init(loop, &nt.async, nt_async_cb);
    uv_unref((uv_handle_t *)&nt.async);
    uv_check_init(loop, &nt.check);
    uv_unref((uv_handle_t *)&nt.check);
    nt.handles_on = 1;

    natsStatus s = nats_Open(-1);
    if (s == NATS_OK)
        s = nats_SetMessageDeliveryPoolSize(1);
    if (s == NATS_OK)
        s = natsOptions_Create(&nt.opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(nt.opts, nt.url);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(nt.opts, loop, nt_attach, natsLibuv_Read,
                                     natsLibuv_Write, natsLibuv_Detach);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(nt.opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(nt.opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(nt.opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(nt.opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(nt.opts, 120 * 1000);
    if (s == NATS_OK)
        s = natsOptions_SetIOBufSize(nt.opts, NT_IO_BUF);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(nt.opts, 5000);
    if (s == NATS_OK)
        s = natsOptions_SetNoRandomize(nt.opts, true);
    if (s != NATS_OK) {
        fprintf(stderr, "rtm-bench: nats: options: %s", natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

static int nt_connect(int i)
{
    nt_client *c = &nt.c[i];
    if (c->state != NT_FREE)
        return -1;
    natsOptions_SetClosedCB(nt.opts, nt_on_closed, (void *)nt_pack(i, c->gen));
    natsStatus s = natsConnection_Connect(&c->nc, nt.opts);   /* clones opts */
    if (s != NATS_OK) {
        bench_log(1, "nats: client %d connect: %s", i, natsStatus_GetText(s));
        c->nc = NULL;
        return -1;
    }
    c->state = NT_READY;
    c->nsubs = 0;
    nt_post(EV_CONNECTED, i, c->gen, NULL);
    return 0;
}

static int nt_subscribe(int i, uint32_t topic)
{
    nt_client *c = &nt.c[i];
    if (c->state != NT_READY)
        return -1;
    if (c->nsubs == c->capsubs) {
        int ncap = c->capsubs ? c->capsubs * 2 : 1;
        natsSubscription **nv = realloc(c->subs, (size_t)ncap * sizeof *nv);
        if (!nv)
            return -1;
        c->subs = nv;
        c->capsubs = ncap;
    }
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_Subscribe(&sub, c->nc, bench_topic_name(topic), nt_on_msg,
                                            (void *)nt_pack(i, c->gen));
    if (s != NATS_OK) {
        bench_log(1, "nats: client %d subscribe: %s", i, natsStatus_GetText(s));
        return -1;
    }
    /* never drop messages in the client: a slow consumer is the server's */
    natsSubscription_SetPendingLimits(sub, 10 * 1000 * 1000, 1024 * 1024 * 1024);
    c->subs[c->nsubs++] = sub;
    /* NATS confirms nothing; the SUB is on its way ahead of anything else
     * this connection sends (warmup covers the other connections). */
    nt_post(EV_SUBSCRIBED, i, c->gen, NULL);
    return 0;
}

static int nt_publish(int i, uint32_t topic, const void *data, size_t len, uint64_t cookie)
{
    nt_client *c = &nt.c[i];
    if (c->state != NT_READY)
        return -1;
    natsStatus s = natsConnection_Publish(c->nc, bench_topic_name(topic), data, (int)len);
    if (s != NATS_OK) {
        bench_log(1, "nats: client %d publish: %s", i, natsStatus_GetText(s));
        return -1;
    }
    int buffered = natsConnection_Buffered(c->nc);
    if (c->acks.count == 0 && buffered >= 0 && buffered <= NT_ACK_BUFFERED) {
        bench_acked(i, cookie, 0);
        return 0;
    }
    if (peer_fifo_push(&c->acks, cookie) != 0) {
        bench_acked(i, cookie, -1);
        return 0;
    }
    nt_block(c);
    return 0;
}

static void nt_close(int i)
{
    nt_client *c = &nt.c[i];
    if (c->state != NT_READY)
        return;
    nt_teardown(c, 0);
    nt_post(EV_CLOSED_LOCAL, i, c->gen, NULL);
}

static void nt_shutdown(void)
{
    nt.shutting = 1;
    for (int i = 0; i < nt.n; i++) {
        nt_client *c = &nt.c[i];
        if (c->state == NT_READY)
            nt_teardown(c, -1);
        c->state = NT_FREE;
        peer_fifo_free(&c->acks);
        free(c->subs);
        c->subs = NULL;
    }
    /* let the adapter's handles close, and drop what is still queued */
    for (int k = 0; k < 4; k++)
        uv_run(nt.loop, UV_RUN_NOWAIT);
    if (nt.handles_on) {
        uv_check_stop(&nt.check);
        uv_close((uv_handle_t *)&nt.check, NULL);
        uv_close((uv_handle_t *)&nt.async, NULL);
        uv_run(nt.loop, UV_RUN_NOWAIT);
    }
    if (nt.opts)
        natsOptions_Destroy(nt.opts);
    nt.opts = NULL;
    nats_CloseAndWait(2000);   /* joins the delivery pool: nothing posts after */
    if (nt.handles_on) {
        for (size_t k = 0; k < nt.in.n; k++)
            if (nt.in.v[k].msg)
                natsMsg_Destroy(nt.in.v[k].msg);
        uv_mutex_destroy(&nt.mu);
        nt.handles_on = 0;
    }
    free(nt.in.v);
    free(nt.out.v);
    free(nt.blocked);
    free(nt.c);
    memset(&nt, 0, sizeof nt);
}

const bench_target bench_target_nats = {
    .name = "nats",
    .caps = 0,
    .init = nt_init,
    .prepare = NULL,
    .connect = nt_connect,
    .subscribe = nt_subscribe,
    .publish = nt_publish,
    .send_p2p = NULL,
    .close = nt_close,
    .shutdown = nt_shutdown,
};
