/* target_mosquitto.c — rtm-bench's Mosquitto target: libmosquitto clients
 * (MQTT v5, QoS 0, one topic per room, no-local subscriptions so a client
 * never gets its own publish back) driven from the shared libuv loop.
 *
 * Shape: no thread per client. Each client's socket (mosquitto_socket) sits
 * in a uv_poll handle; readable calls mosquitto_loop_read, writable
 * mosquitto_loop_write, and after every call the handle watches for writable
 * only while mosquitto_want_write says there are bytes queued. One timer
 * calls mosquitto_loop_misc for every connected client once a second
 * (keepalive pings). Connects are non-blocking (mosquitto_connect_bind_async)
 * and bind to the engine's source address for the client when it has one.
 *
 * Acks: QoS 0 has no server ack; a publish is acked when libmosquitto has
 * written it to the socket (its on_publish callback), so a sender is held back
 * by TCP like every other target. Cookies wait in a per-client FIFO
 * (peer_fifo.h): QoS 0 packets leave in order. The socket's send buffer is
 * capped (MQ_SNDBUF) so that "written" means a bounded backlog: with
 * loopback's autotuned buffers of megabytes, tens of thousands of messages
 * would count as sent long before the broker reads them, and the drain at
 * the end would not finish. The broker's side is left as configured.
 *
 * Teardown: a client is closed by stopping its poll handle, closing the
 * handle, and destroying the mosquitto object (which closes the socket) in
 * the handle's close callback, so that the slot can be connected again at
 * once (churn). No DISCONNECT packet is sent: like the rtmd target, closing
 * means closing the socket. */
#include "bench.h"
#include "peer_fifo.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MQ_KEEPALIVE_S 120   /* long enough that idle phases need no pings */
#define MQ_SNDBUF (64 * 1024) /* see "Acks" above */

enum { MQ_FREE, MQ_CONNECTING, MQ_READY, MQ_CLOSING };

typedef struct mq_client {
    struct mosquitto *mosq;
    uv_poll_t poll;
    peer_fifo acks;        /* cookies of publishes not yet written */
    int idx;
    int events;            /* what the poll handle watches now */
    int close_status;
    uint8_t state;
    uint8_t polling;       /* poll handle initialised, not yet closed */
    uint8_t connected;     /* bench_connected(i, 0) was reported */
} mq_client;

static struct {
    uv_loop_t *loop;
    const bench_opts *o;
    mq_client *c;
    int n;
    int port;
    uv_timer_t misc_timer;
    int timer_on;
    int lib_on;
    int shutting;     /* shutdown(): close callbacks report nothing */
} mq;

static void mq_fail(mq_client *c, int status);
static void mq_poll_cb(uv_poll_t *h, int status, int events);

static void mq_update_poll(mq_client *c)
{
    if (!c->polling || (c->state != MQ_CONNECTING && c->state != MQ_READY))
        return;
    int want = UV_READABLE | (mosquitto_want_write(c->mosq) ? UV_WRITABLE : 0);
    if (want == c->events)
        return;
    c->events = want;
    if (uv_poll_start(&c->poll, want, mq_poll_cb) != 0)
        mq_fail(c, -1);
}

/* MOSQ_ERR_* codes that mean the connection is gone. */
static int mq_conn_gone(int rc)
{
    return rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST ||
           rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_PROTOCOL ||
           rc == MOSQ_ERR_CONN_REFUSED || rc == MOSQ_ERR_KEEPALIVE;
}

static void mq_poll_cb(uv_poll_t *h, int status, int events)
{
    mq_client *c = h->data;
    if (c->state != MQ_CONNECTING && c->state != MQ_READY)
        return;
    if (status < 0) {
        mq_fail(c, status);
        return;
    }
    int rc;
    if (events & UV_READABLE) {
        rc = mosquitto_loop_read(c->mosq, 1);
        if (c->state != MQ_CONNECTING && c->state != MQ_READY)
            return;   /* closed from a callback */
        if (rc != MOSQ_ERR_SUCCESS) {
            mq_fail(c, -rc);
            return;
        }
    }
    if (events & UV_WRITABLE) {
        rc = mosquitto_loop_write(c->mosq, 1);
        if (c->state != MQ_CONNECTING && c->state != MQ_READY)
            return;
        if (rc != MOSQ_ERR_SUCCESS) {
            mq_fail(c, -rc);
            return;
        }
    }
    mq_update_poll(c);
}

static void mq_closed_cb(uv_handle_t *h)
{
    mq_client *c = h->data;
    int was_connected = c->connected;
    c->polling = 0;
    if (c->mosq) {
        mosquitto_destroy(c->mosq);   /* closes the socket */
        c->mosq = NULL;
    }
    c->state = MQ_FREE;
    c->connected = 0;
    if (mq.shutting)
        return;
    if (was_connected)
        bench_closed(c->idx, c->close_status);
    else
        bench_connected(c->idx, c->close_status ? c->close_status : -1);
}

/* Ends the connection: unacked publishes fail, the poll handle closes, the
 * completion (bench_closed, or bench_connected with an error while still
 * connecting) follows from the close callback. */
static void mq_fail(mq_client *c, int status)
{
    if (c->state != MQ_CONNECTING && c->state != MQ_READY)
        return;
    c->state = MQ_CLOSING;
    c->close_status = status;
    while (c->acks.count)
        bench_acked(c->idx, peer_fifo_pop(&c->acks), status ? status : -1);
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, mq_closed_cb);
}

/* ---- libmosquitto callbacks (run inside loop_read / loop_write) ---------- */

static void mq_on_connect(struct mosquitto *m, void *obj, int rc)
{
    mq_client *c = obj;
    if (c->state != MQ_CONNECTING)
        return;
    if (rc != 0) {
        bench_log(1, "mosquitto: client %d refused: %s", c->idx,
                  mosquitto_connack_string(rc));
        mq_fail(c, -rc);
        return;
    }
    c->state = MQ_READY;
    c->connected = 1;
    bench_connected(c->idx, 0);
}

static void mq_on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count,
                            const int *granted)
{
    mq_client *c = obj;
    if (c->state != MQ_READY)
        return;
    int ok = qos_count >= 1 && granted[0] >= 0 && granted[0] < 128;
    bench_subscribed(c->idx, ok ? 0 : -1);
}

static void mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    mq_client *c = obj;
    if (c->state != MQ_READY)
        return;
    bench_delivered(c->idx, msg->payload, (size_t)msg->payloadlen);
}

static void mq_on_publish(struct mosquitto *m, void *obj, int mid)
{
    mq_client *c = obj;
    if (c->state != MQ_READY || c->acks.count == 0)
        return;
    bench_acked(c->idx, peer_fifo_pop(&c->acks), 0);
}

static void mq_misc_cb(uv_timer_t *t)
{
    for (int i = 0; i < mq.n; i++) {
        mq_client *c = &mq.c[i];
        if (c->state != MQ_READY)
            continue;
        int rc = mosquitto_loop_misc(c->mosq);
        if (c->state != MQ_READY)
            continue;
        if (rc != MOSQ_ERR_SUCCESS && mq_conn_gone(rc))
            mq_fail(c, -rc);
        else
            mq_update_poll(c);
    }
}

/* ---- the target interface ---------------------------------------------- */

static int mq_init(uv_loop_t *loop, const bench_opts *o, int nclients)
{
    memset(&mq, 0, sizeof mq);
    mq.loop = loop;
    mq.o = o;
    mq.n = nclients;
    mq.port = o->port ? o->port : 1883;
    mq.c = calloc((size_t)(nclients > 0 ? nclients : 1), sizeof *mq.c);
    if (!mq.c)
        return -1;
    for (int i = 0; i < nclients; i++) {
        mq.c[i].idx = i;
        mq.c[i].poll.data = &mq.c[i];
    }
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
        return -1;
    mq.lib_on = 1;
    uv_timer_init(loop, &mq.misc_timer);
    uv_timer_start(&mq.misc_timer, mq_misc_cb, 1000, 1000);
    uv_unref((uv_handle_t *)&mq.misc_timer);   /* never keeps the loop alive */
    mq.timer_on = 1;
    return 0;
}

static int mq_connect(int i)
{
    mq_client *c = &mq.c[i];
    if (c->state != MQ_FREE)
        return -1;
    char id[64];
    snprintf(id, sizeof id, "rtmb-%d-%d", (int)getpid(), i);
    c->mosq = mosquitto_new(id, true, c);
    if (!c->mosq)
        return -1;
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(c->mosq, mq_on_connect);
    mosquitto_subscribe_callback_set(c->mosq, mq_on_subscribe);
    mosquitto_message_callback_set(c->mosq, mq_on_message);
    mosquitto_publish_callback_set(c->mosq, mq_on_publish);

    int rc = mosquitto_connect_bind_async(c->mosq, mq.o->host, mq.port, MQ_KEEPALIVE_S,
                                          bench_source_addr_str(i));
    int fd = rc == MOSQ_ERR_SUCCESS ? mosquitto_socket(c->mosq) : -1;
    if (fd < 0 || uv_poll_init_socket(mq.loop, &c->poll, fd) != 0) {
        bench_log(1, "mosquitto: client %d connect: %s", i,
                  rc ? mosquitto_strerror(rc) : "no socket");
        mosquitto_destroy(c->mosq);
        c->mosq = NULL;
        return -1;
    }
    int sndbuf = MQ_SNDBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    c->poll.data = c;
    c->polling = 1;
    c->events = 0;
    c->connected = 0;
    c->close_status = 0;
    c->state = MQ_CONNECTING;
    mq_update_poll(c);
    return 0;
}

static int mq_subscribe(int i, uint32_t topic)
{
    mq_client *c = &mq.c[i];
    if (c->state != MQ_READY)
        return -1;
    int rc = mosquitto_subscribe_v5(c->mosq, NULL, bench_topic_name(topic), 0,
                                    MQTT_SUB_OPT_NO_LOCAL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (mq_conn_gone(rc))
            mq_fail(c, -rc);
        return -1;
    }
    mq_update_poll(c);
    return 0;
}

static int mq_publish(int i, uint32_t topic, const void *data, size_t len, uint64_t cookie)
{
    mq_client *c = &mq.c[i];
    if (c->state != MQ_READY)
        return -1;
    if (peer_fifo_push(&c->acks, cookie) != 0)
        return -1;
    /* on_publish may run inside this call (the packet went out at once) */
    int rc = mosquitto_publish(c->mosq, NULL, bench_topic_name(topic), (int)len, data, 0, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        peer_fifo_drop_last(&c->acks);
        if (mq_conn_gone(rc))
            mq_fail(c, -rc);
        return -1;
    }
    mq_update_poll(c);
    return 0;
}

static void mq_close(int i)
{
    mq_client *c = &mq.c[i];
    if (c->state == MQ_CONNECTING || c->state == MQ_READY)
        mq_fail(c, 0);
}

static void mq_shutdown(void)
{
    mq.shutting = 1;
    if (mq.timer_on) {
        uv_timer_stop(&mq.misc_timer);
        uv_close((uv_handle_t *)&mq.misc_timer, NULL);
        mq.timer_on = 0;
    }
    for (int i = 0; i < mq.n; i++) {
        mq_client *c = &mq.c[i];
        if (c->polling && !uv_is_closing((uv_handle_t *)&c->poll)) {
            uv_poll_stop(&c->poll);
            uv_close((uv_handle_t *)&c->poll, mq_closed_cb);
        }
        if (c->mosq && !c->polling) {
            mosquitto_destroy(c->mosq);
            c->mosq = NULL;
        }
        peer_fifo_free(&c->acks);
    }
    /* Handles still closing refer to mq.c: let their callbacks run first. */
    uv_run(mq.loop, UV_RUN_NOWAIT);
    for (int i = 0; i < mq.n; i++)
        if (mq.c[i].mosq) {
            mosquitto_destroy(mq.c[i].mosq);
            mq.c[i].mosq = NULL;
        }
    free(mq.c);
    mq.c = NULL;
    mq.n = 0;
    if (mq.lib_on)
        mosquitto_lib_cleanup();
    mq.lib_on = 0;
}

const bench_target bench_target_mosquitto = {
    .name = "mosquitto",
    .caps = 0,
    .init = mq_init,
    .prepare = NULL,
    .connect = mq_connect,
    .subscribe = mq_subscribe,
    .publish = mq_publish,
    .send_p2p = NULL,
    .close = mq_close,
    .shutdown = mq_shutdown,
};
