/* librtm connection engine (API in include/rtm/client.h): the I/O thread and
 * its libuv loop, the request queue that hands API calls over to it, the
 * link (TCP connect, optional *key handshake, framing and encryption of
 * both directions), the table of quests waiting for answers with their
 * deadlines, and reconnection with backoff.
 *
 * Shape: API calls encode their packet on the caller's thread, then push a
 * command on a mutex-protected list and wake the loop with uv_async_send.
 * Everything else (sequence numbers, pending table, link state) belongs to
 * the I/O thread and needs no lock. A pending quest is one `cmd`, found by
 * seq in a chained hash table and ordered by deadline in a binary heap
 * driven by a single timer. Quests sent while the link is down wait in a
 * FIFO (already numbered and under their deadline) and go out once the link
 * is up; a failed attempt or a lost link fails every one of them with
 * FPNN_EC_CORE_CONNECTION_CLOSED. */
#include "rtm/client.h"

#include "buf.h"
#include "dedup.h"
#include "fpnn_crypto.h"
#include "log.h"
#include "payload.h"
#include "rtm/fpnn.h"

#include <msgpack.h>
#include <uv.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_PACKET (16u << 20)
#define DEFAULT_RECONNECT_MIN_MS 500u
#define DEFAULT_RECONNECT_MAX_MS 30000u
#define READ_CHUNK 65536
/* Bytes queued on a link that stops reading before new quests are refused. */
#define MAX_OUTPUT (64u << 20)
#define NO_HEAP SIZE_MAX
/* Message pushes remembered to drop repeats (dedup.h), as the RTM SDKs do. */
#define PUSH_DEDUP_KEEP 10000

static const uint8_t EMPTY_MAP[1] = {0x80};

enum cmd_kind { CMD_QUEST, CMD_ONEWAY, CMD_ANSWER, CMD_CONNECT, CMD_CLOSE };

/* A thread in rtm_client_wait_connected. Registered by the I/O thread when
 * it handles the CONNECT request, so that it learns the outcome of the
 * attempt under way then or started by it, never of an older one. Shared by
 * the two threads under c->mu; freed by whichever lets go last. */
typedef struct conn_waiter {
    struct conn_waiter *next; /* I/O thread's list */
    int refs;
    bool done;
    int rc;
} conn_waiter;

/* One request from the API. Quests stay alive as the pending entry until
 * answered, timed out or failed. */
typedef struct cmd {
    struct cmd *next;        /* request queue, then the unsent FIFO */
    struct cmd *prev;        /* unsent FIFO */
    struct cmd *hnext;       /* pending hash chain */
    enum cmd_kind kind;
    bool unsent;             /* in the unsent FIFO */
    bool internal;           /* the *key quest of the handshake */
    rtm_answer_cb cb;
    void *arg;
    int64_t pre_error;       /* quests that fail before being sent (bad JSON) */
    unsigned timeout_ms;
    uint32_t seq;
    uint64_t deadline;       /* loop time in ms */
    size_t heap_idx;
    uint64_t quest_id;       /* answers: link generation << 32 | seq */
    uint8_t *pkt;            /* encoded packet; freed once written */
    size_t pkt_len;
    conn_waiter *waiter;     /* CMD_CONNECT from rtm_client_wait_connected */
} cmd;

enum state { ST_IDLE, ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_CONNECTED, ST_BACKOFF };

typedef struct rtm_link {
    uv_tcp_t tcp;
    rtm_client *c;
    uint64_t gen;
    bool closing;
    uv_connect_t creq;
    uv_write_t wreq;
    bool writing;
    rtm_buf out;             /* bytes waiting for the next write */
    rtm_buf wbuf;            /* bytes of the write in flight */
    rtm_buf raw;             /* package mode: ciphertext not yet decrypted */
    rtm_buf in;              /* plaintext FPNN bytes not yet parsed */
    rtm_buf scratch;         /* plaintext packet before encryption */
    fpnn_crypto *crypto;     /* set once the *key quest is written */
    char rbuf[READ_CHUNK];
} rtm_link;

typedef struct gai_req {
    uv_getaddrinfo_t req;
    rtm_client *c;
    uint64_t attempt;
} gai_req;

struct rtm_client {
    rtm_options opt;
    rtm_dedup *dedup;        /* I/O thread: recent message pushes, made at the first quest */
    char *host;
    char port_str[8];
    bool encrypt;
    uint8_t server_pub[RTM_PUBKEY_LEN];

    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t quest_timer;
    uv_timer_t conn_timer;   /* connect deadline, or the reconnect delay */
    uv_timer_t idle_timer;
    uv_thread_t thread;
    uv_thread_t io_tid;

    /* Shared with API threads, under mu. */
    uv_mutex_t mu;
    uv_cond_t cond;
    cmd *q_head, *q_tail;
    bool stop_requested;
    bool started;
    bool pub_connected;
    char last_error[256];

    /* I/O thread only. */
    enum state st;
    bool stopping;
    bool user_closed;        /* rtm_client_close: no automatic reconnect */
    rtm_link *link;
    uint64_t link_gen;
    uint64_t attempt;
    struct addrinfo *ai_list;
    struct addrinfo *ai_next;
    char connect_error[128];
    unsigned backoff_ms;
    uint64_t last_recv;
    uint64_t rng;
    uint32_t next_seq;
    cmd **buckets;
    size_t nbuckets;
    size_t npending;
    cmd **heap;
    size_t heap_len;
    size_t heap_cap;
    cmd *u_head, *u_tail;
    conn_waiter *waiters;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static bool on_io_thread(rtm_client *c)
{
    uv_thread_t self = uv_thread_self();
    uv_mutex_lock(&c->mu);
    bool same = c->started && uv_thread_equal(&self, &c->io_tid);
    uv_mutex_unlock(&c->mu);
    return same;
}

static void cmd_free(cmd *m)
{
    if (!m)
        return;
    free(m->pkt);
    free(m);
}

static cmd *cmd_new(enum cmd_kind kind)
{
    cmd *m = calloc(1, sizeof *m);
    if (m) {
        m->kind = kind;
        m->heap_idx = NO_HEAP;
    }
    return m;
}

/* Encodes a packet with seq 0 (patched when numbered). */
static int cmd_encode(cmd *m, uint8_t mtype, uint8_t status, const char *method, size_t method_len,
                      const void *payload, size_t len)
{
    if (!payload || len == 0) {
        payload = EMPTY_MAP;
        len = sizeof EMPTY_MAP;
    }
    if (len > UINT32_MAX)
        return -1;
    m->pkt_len = fpnn_encoded_size(mtype, method_len, len);
    m->pkt = malloc(m->pkt_len);
    if (!m->pkt)
        return -1;
    fpnn_encode(m->pkt, FPNN_FLAG_MSGPACK, mtype, status, 0, method, method_len, payload, len);
    return 0;
}

/* Hands a request to the I/O thread. Requests made while rtm_client_free
 * runs (from callbacks it triggers) are discarded by it. */
static void submit(rtm_client *c, cmd *m)
{
    m->next = NULL;
    uv_mutex_lock(&c->mu);
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    bool stopping = c->stop_requested;
    uv_mutex_unlock(&c->mu);
    if (!stopping)
        uv_async_send(&c->wake);
}

/* xorshift64*, for reconnect jitter only. */
static uint32_t rng_next(rtm_client *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ------------------------------------------------------------------ */
/* Pending quests: hash by seq, heap by deadline, FIFO while unsent     */

static int table_grow(rtm_client *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    cmd **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < c->nbuckets; i++) {
        cmd *m = c->buckets[i];
        while (m) {
            cmd *next = m->hnext;
            size_t h = m->seq & (n - 1);
            m->hnext = b[h];
            b[h] = m;
            m = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return 0;
}

static cmd *table_find(rtm_client *c, uint32_t seq)
{
    if (!c->nbuckets)
        return NULL;
    for (cmd *m = c->buckets[seq & (c->nbuckets - 1)]; m; m = m->hnext)
        if (m->seq == seq)
            return m;
    return NULL;
}

static int table_put(rtm_client *c, cmd *m)
{
    if (c->npending >= c->nbuckets && table_grow(c) != 0)
        return -1;
    size_t h = m->seq & (c->nbuckets - 1);
    m->hnext = c->buckets[h];
    c->buckets[h] = m;
    c->npending++;
    return 0;
}

static void table_remove(rtm_client *c, cmd *m)
{
    if (!c->nbuckets)
        return;
    cmd **pp = &c->buckets[m->seq & (c->nbuckets - 1)];
    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = m->hnext;
        c->npending--;
    }
    m->hnext = NULL;
}

static void heap_set(rtm_client *c, size_t i, cmd *m)
{
    c->heap[i] = m;
    m->heap_idx = i;
}

static void heap_up(rtm_client *c, size_t i)
{
    cmd *m = c->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (c->heap[parent]->deadline <= m->deadline)
            break;
        heap_set(c, i, c->heap[parent]);
        i = parent;
    }
    heap_set(c, i, m);
}

static void heap_down(rtm_client *c, size_t i)
{
    cmd *m = c->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        uint64_t bd = m->deadline;
        if (l < c->heap_len && c->heap[l]->deadline < bd) {
            best = l;
            bd = c->heap[l]->deadline;
        }
        if (r < c->heap_len && c->heap[r]->deadline < bd)
            best = r;
        if (best == i)
            break;
        heap_set(c, i, c->heap[best]);
        i = best;
    }
    heap_set(c, i, m);
}

static int heap_push(rtm_client *c, cmd *m)
{
    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        cmd **h = realloc(c->heap, cap * sizeof *h);
        if (!h)
            return -1;
        c->heap = h;
        c->heap_cap = cap;
    }
    heap_set(c, c->heap_len++, m);
    heap_up(c, m->heap_idx);
    return 0;
}

static void heap_remove(rtm_client *c, cmd *m)
{
    size_t i = m->heap_idx;
    if (i == NO_HEAP)
        return;
    m->heap_idx = NO_HEAP;
    cmd *last = c->heap[--c->heap_len];
    if (last == m)
        return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->heap_idx);
}

static void unsent_push(rtm_client *c, cmd *m)
{
    m->unsent = true;
    m->next = NULL;
    m->prev = c->u_tail;
    if (c->u_tail)
        c->u_tail->next = m;
    else
        c->u_head = m;
    c->u_tail = m;
}

static void unsent_remove(rtm_client *c, cmd *m)
{
    if (!m->unsent)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else
        c->u_head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        c->u_tail = m->prev;
    m->next = m->prev = NULL;
    m->unsent = false;
}

static void on_quest_timer(uv_timer_t *t);

static void arm_quest_timer(rtm_client *c)
{
    if (c->stopping)
        return;
    if (c->heap_len == 0) {
        uv_timer_stop(&c->quest_timer);
        return;
    }
    uint64_t now = uv_now(&c->loop);
    uint64_t d = c->heap[0]->deadline;
    uv_timer_start(&c->quest_timer, on_quest_timer, d > now ? d - now : 0, 0);
}

/* Takes a pending quest out of every structure that knows it. */
static void pending_detach(rtm_client *c, cmd *m)
{
    table_remove(c, m);
    heap_remove(c, m);
    unsent_remove(c, m);
}

static void handshake_answer(rtm_client *c, const rtm_answer *a);

/* Calls the quest's callback with an answer and frees it. */
static void complete(rtm_client *c, cmd *m, const rtm_answer *a)
{
    if (m->internal)
        handshake_answer(c, a);
    else if (m->cb)
        m->cb(c, a, m->arg);
    cmd_free(m);
}

static void complete_local(rtm_client *c, cmd *m, int64_t code, const char *ex)
{
    rtm_answer a = {.code = code, .ex = ex ? ex : "", .local = true};
    complete(c, m, &a);
}

static void fail_all_pending(rtm_client *c, const char *reason)
{
    /* Unsent ones first, in the order they were sent. */
    while (c->u_head) {
        cmd *m = c->u_head;
        unsent_remove(c, m);
        if (m->kind == CMD_QUEST) {
            table_remove(c, m);
            heap_remove(c, m);
            complete_local(c, m, FPNN_EC_CORE_CONNECTION_CLOSED, reason);
        } else {
            cmd_free(m);
        }
    }
    for (size_t i = 0; i < c->nbuckets; i++) {
        while (c->buckets[i]) {
            cmd *m = c->buckets[i];
            pending_detach(c, m);
            complete_local(c, m, FPNN_EC_CORE_CONNECTION_CLOSED, reason);
        }
    }
    arm_quest_timer(c);
}

static void on_quest_timer(uv_timer_t *t)
{
    rtm_client *c = t->data;
    uint64_t now = uv_now(&c->loop);
    while (c->heap_len > 0 && c->heap[0]->deadline <= now) {
        cmd *m = c->heap[0];
        pending_detach(c, m);
        complete_local(c, m, FPNN_EC_CORE_TIMEOUT, "quest timeout");
    }
    arm_quest_timer(c);
}

/* ------------------------------------------------------------------ */
/* Published state                                                       */

/* The state seen by rtm_client_is_connected and rtm_client_last_error is
 * updated before the callbacks of a change run; threads waiting in
 * rtm_client_wait_connected are woken after them (resolve_waiters), so
 * that they see every callback of the change done. */
static void publish(rtm_client *c, bool connected, const char *reason)
{
    uv_mutex_lock(&c->mu);
    c->pub_connected = connected;
    if (reason)
        snprintf(c->last_error, sizeof c->last_error, "%s", reason);
    uv_mutex_unlock(&c->mu);
}

/* Drops one reference; call with c->mu held. */
static void waiter_release(conn_waiter *w)
{
    if (--w->refs == 0)
        free(w);
}

static void waiter_resolve(rtm_client *c, conn_waiter *w, int rc)
{
    uv_mutex_lock(&c->mu);
    w->done = true;
    w->rc = rc;
    waiter_release(w);
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->mu);
}

static void resolve_waiters(rtm_client *c, int rc)
{
    conn_waiter *w = c->waiters;
    c->waiters = NULL;
    while (w) {
        conn_waiter *next = w->next;
        waiter_resolve(c, w, rc);
        w = next;
    }
}

static void emit(rtm_client *c, enum rtm_event ev, const char *reason)
{
    if (c->opt.on_event)
        c->opt.on_event(c, ev, reason ? reason : "", c->opt.arg);
}

/* ------------------------------------------------------------------ */
/* Link: output                                                          */

static void link_lost(rtm_link *l, const char *reason);

static void on_write(uv_write_t *req, int status)
{
    rtm_link *l = req->data;
    l->writing = false;
    rtm_buf_reset(&l->wbuf);
    if (l->closing)
        return;
    if (status < 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "write failed: %s", uv_strerror(status));
        link_lost(l, reason);
        return;
    }
    if (rtm_buf_pending(&l->out) > 0) {
        rtm_buf t = l->out;
        l->out = l->wbuf;
        l->wbuf = t;
        uv_buf_t b = uv_buf_init((char *)rtm_buf_head(&l->wbuf), (unsigned)rtm_buf_pending(&l->wbuf));
        int rc = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, on_write);
        if (rc < 0) {
            char reason[128];
            snprintf(reason, sizeof reason, "write failed: %s", uv_strerror(rc));
            link_lost(l, reason);
            return;
        }
        l->writing = true;
    }
}

static void link_flush(rtm_link *l)
{
    if (!l || l->closing || l->writing || rtm_buf_pending(&l->out) == 0)
        return;
    rtm_buf t = l->out;
    l->out = l->wbuf;
    l->wbuf = t;
    uv_buf_t b = uv_buf_init((char *)rtm_buf_head(&l->wbuf), (unsigned)rtm_buf_pending(&l->wbuf));
    l->wreq.data = l;
    int rc = uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, on_write);
    if (rc < 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "write failed: %s", uv_strerror(rc));
        link_lost(l, reason);
        return;
    }
    l->writing = true;
}

/* Queues an encoded packet on the link, encrypting it when the link is. */
static int link_put(rtm_link *l, const uint8_t *pkt, size_t len)
{
    if (l->crypto)
        return fpnn_crypto_encrypt(l->crypto, pkt, len, &l->out);
    return rtm_buf_append(&l->out, pkt, len);
}

/* Encodes and queues an answer to the peer's quest seq. */
static void link_answer(rtm_link *l, uint32_t seq, uint8_t status, const uint8_t *payload, size_t len)
{
    size_t n = fpnn_encoded_size(FPNN_MT_ANSWER, 0, len);
    rtm_buf_reset(&l->scratch);
    if (rtm_buf_reserve(&l->scratch, n) != 0)
        return;
    fpnn_encode(l->scratch.data, FPNN_FLAG_MSGPACK, FPNN_MT_ANSWER, status, seq, NULL, 0, payload, len);
    l->scratch.len = n;
    if (link_put(l, l->scratch.data, n) != 0)
        link_lost(l, "cannot queue an answer (out of memory or encryption failure)");
}

static void link_answer_error(rtm_link *l, uint32_t seq, int64_t code, const char *ex)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rtm_pack_error(&sb, code, ex, "librtm");
    link_answer(l, seq, 1, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------ */
/* Link: life cycle                                                      */

static void on_link_closed(uv_handle_t *h)
{
    rtm_link *l = h->data;
    rtm_buf_free(&l->out);
    rtm_buf_free(&l->wbuf);
    rtm_buf_free(&l->raw);
    rtm_buf_free(&l->in);
    rtm_buf_free(&l->scratch);
    fpnn_crypto_free(l->crypto);
    free(l);
}

static void link_close(rtm_link *l)
{
    if (!l || l->closing)
        return;
    l->closing = true;
    uv_read_stop((uv_stream_t *)&l->tcp);
    uv_close((uv_handle_t *)&l->tcp, on_link_closed);
}

static void start_connect(rtm_client *c);

static void on_conn_timer(uv_timer_t *t);

/* Ends the current attempt or link: fails every waiting quest, reports the
 * event and schedules the next attempt when reconnecting. */
static void drop(rtm_client *c, const char *reason)
{
    enum state was = c->st;
    if (was == ST_IDLE || was == ST_BACKOFF)
        return;
    link_close(c->link);
    c->link = NULL;
    if (c->ai_list) {
        uv_freeaddrinfo(c->ai_list);
        c->ai_list = c->ai_next = NULL;
    }
    c->attempt++; /* makes a resolver answer still on its way stale */
    c->st = ST_IDLE;
    uv_timer_stop(&c->conn_timer);
    uv_timer_stop(&c->idle_timer);
    bool established = was == ST_CONNECTED;
    LOG_DEBUG("librtm %s:%u: %s: %s", c->host, c->opt.port, established ? "link closed" : "connect failed",
              reason);
    publish(c, false, reason);
    emit(c, established ? RTM_EVENT_CLOSED : RTM_EVENT_CONNECT_FAILED, reason);
    fail_all_pending(c, reason);
    resolve_waiters(c, FPNN_EC_CORE_CONNECTION_CLOSED);

    if (c->opt.auto_reconnect && !c->user_closed && !c->stopping && c->st == ST_IDLE) {
        unsigned delay = c->backoff_ms;
        delay += delay ? rng_next(c) % (delay / 4 + 1) : 0;
        unsigned next = c->backoff_ms * 2;
        c->backoff_ms = next > c->opt.reconnect_max_ms || next < c->backoff_ms ? c->opt.reconnect_max_ms : next;
        c->st = ST_BACKOFF;
        uv_timer_start(&c->conn_timer, on_conn_timer, delay, 0);
    }
}

static void link_lost(rtm_link *l, const char *reason)
{
    rtm_client *c = l->c;
    if (l->closing)
        return;
    if (c->link == l)
        drop(c, reason);
    else
        link_close(l);
}

static void on_conn_timer(uv_timer_t *t)
{
    rtm_client *c = t->data;
    if (c->st == ST_BACKOFF) {
        c->st = ST_IDLE;
        start_connect(c);
    } else if (c->st != ST_IDLE && c->st != ST_CONNECTED) {
        char reason[160];
        snprintf(reason, sizeof reason, "connect to %s:%u: timed out after %u ms", c->host, c->opt.port,
                 c->opt.connect_timeout_ms);
        drop(c, reason);
    }
}

static void on_idle_timer(uv_timer_t *t)
{
    rtm_client *c = t->data;
    if (c->st != ST_CONNECTED)
        return;
    uint64_t now = uv_now(&c->loop);
    if (now - c->last_recv >= c->opt.idle_timeout_ms) {
        char reason[96];
        snprintf(reason, sizeof reason, "nothing received for %u ms", c->opt.idle_timeout_ms);
        drop(c, reason);
    }
}

static bool output_full(const rtm_link *l)
{
    return rtm_buf_pending(&l->out) + rtm_buf_pending(&l->wbuf) > MAX_OUTPUT;
}

static void write_cmd(rtm_client *c, cmd *m)
{
    if (link_put(c->link, m->pkt, m->pkt_len) != 0) {
        link_lost(c->link, "cannot queue a quest (out of memory or encryption failure)");
        return;
    }
    free(m->pkt);
    m->pkt = NULL;
    m->pkt_len = 0;
}

static void established(rtm_client *c)
{
    c->st = ST_CONNECTED;
    uv_timer_stop(&c->conn_timer);
    c->backoff_ms = c->opt.reconnect_min_ms;
    c->last_recv = uv_now(&c->loop);
    if (c->opt.idle_timeout_ms) {
        unsigned every = c->opt.idle_timeout_ms / 4;
        if (every < 50)
            every = 50;
        uv_timer_start(&c->idle_timer, on_idle_timer, every, every);
    }
    LOG_DEBUG("librtm %s:%u: connected%s", c->host, c->opt.port, c->encrypt ? " (encrypted)" : "");
    publish(c, true, NULL);
    /* Quests sent while the link was down go out first, in order. */
    while (c->u_head && c->st == ST_CONNECTED) {
        cmd *m = c->u_head;
        bool oneway = m->kind == CMD_ONEWAY;
        unsent_remove(c, m);
        write_cmd(c, m); /* a quest may be failed and freed in there */
        if (oneway)
            cmd_free(m);
    }
    if (c->st != ST_CONNECTED)
        return;
    link_flush(c->link);
    emit(c, RTM_EVENT_CONNECTED, NULL);
    resolve_waiters(c, 0);
}

static void handshake_answer(rtm_client *c, const rtm_answer *a)
{
    if (c->st != ST_HANDSHAKE)
        return; /* the link is already gone */
    if (a->code != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "encryption handshake refused: %lld %s", (long long)a->code, a->ex);
        drop(c, reason);
        return;
    }
    established(c);
}

/* Sends the *key quest in plaintext and turns encryption on for every byte
 * after it. */
static int start_handshake(rtm_client *c, rtm_link *l)
{
    EVP_PKEY *own = fpnn_crypto_generate_key();
    uint8_t pub[FPNN_CRYPTO_PUBKEY_LEN];
    if (!own || fpnn_crypto_public_key(own, pub) != 0) {
        EVP_PKEY_free(own);
        return -1;
    }
    fpnn_crypto *crypto = fpnn_crypto_new(own, c->server_pub, sizeof c->server_pub, c->opt.bits,
                                          c->opt.stream_mode);
    EVP_PKEY_free(own);
    if (!crypto)
        return -1;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    mp_pack_cstr(&pk, "publicKey");
    msgpack_pack_bin_with_body(&pk, pub, sizeof pub);
    mp_pack_cstr(&pk, "streamMode");
    if (c->opt.stream_mode)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    mp_pack_kv_int(&pk, "bits", c->opt.bits);

    cmd *m = cmd_new(CMD_QUEST);
    int rc = -1;
    if (m && cmd_encode(m, FPNN_MT_TWOWAY, 0, "*key", 4, sb.data, sb.size) == 0) {
        m->internal = true;
        do
            m->seq = c->next_seq++;
        while (m->seq == 0 || table_find(c, m->seq));
        fpnn_patch_seq(m->pkt, m->seq);
        if (table_put(c, m) == 0) {
            rc = rtm_buf_append(&l->out, m->pkt, m->pkt_len);
            free(m->pkt);
            m->pkt = NULL;
            if (rc != 0)
                table_remove(c, m);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        cmd_free(m);
        fpnn_crypto_free(crypto);
        return -1;
    }
    l->crypto = crypto;
    c->st = ST_HANDSHAKE;
    link_flush(l);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Link: input                                                           */

/* Converts a JSON body to msgpack when needed; *data then points at the
 * bytes to use. Returns -1 for a body that cannot be converted. */
static int body_msgpack(uint8_t flag, const uint8_t **data, size_t *len, msgpack_sbuffer *conv)
{
    if (*len == 0) {
        *data = EMPTY_MAP;
        *len = sizeof EMPTY_MAP;
        return 0;
    }
    if (flag != FPNN_FLAG_JSON)
        return 0;
    if (rtm_json_to_msgpack((const char *)*data, *len, conv) != 0)
        return -1;
    *data = (const uint8_t *)conv->data;
    *len = conv->size;
    return 0;
}

static void on_answer(rtm_client *c, const fpnn_packet *p)
{
    cmd *m = table_find(c, p->seq);
    if (!m) {
        LOG_DEBUG("librtm %s:%u: answer to unknown or expired seq %u", c->host, c->opt.port, p->seq);
        return;
    }
    pending_detach(c, m);

    msgpack_sbuffer conv;
    msgpack_sbuffer_init(&conv);
    const uint8_t *body = p->payload;
    size_t blen = p->payload_len;
    rtm_answer a = {.code = 0, .ex = ""};
    char *ex_copy = NULL;
    if (body_msgpack(p->flag, &body, &blen, &conv) != 0) {
        a.code = FPNN_EC_CORE_DECODING;
        a.ex = "answer body is not valid JSON";
        a.local = true;
    } else {
        a.payload = body;
        a.payload_len = blen;
        if (p->status != 0) {
            msgpack_unpacked u;
            a.code = FPNN_EC_CORE_UNKNOWN_ERROR;
            a.ex = "error answer without code";
            if (rtm_payload_decode(FPNN_FLAG_MSGPACK, body, blen, &u) == 0) {
                int64_t code;
                const char *ex;
                size_t exlen;
                if (mp_get_int64(&u.data, "code", &code))
                    a.code = code;
                if (mp_get_str(&u.data, "ex", &ex, &exlen) && (ex_copy = malloc(exlen + 1))) {
                    memcpy(ex_copy, ex, exlen);
                    ex_copy[exlen] = '\0';
                    a.ex = ex_copy;
                } else if (mp_map_get(&u.data, "code")) {
                    a.ex = "";
                }
                msgpack_unpacked_destroy(&u);
            }
        }
    }
    complete(c, m, &a);
    free(ex_copy);
    msgpack_sbuffer_destroy(&conv);
}

static void on_quest(rtm_client *c, rtm_link *l, const fpnn_packet *p)
{
    bool twoway = p->mtype == FPNN_MT_TWOWAY;
    char method[FPNN_MAX_METHOD + 1];
    memcpy(method, p->method, p->method_len);
    method[p->method_len] = '\0';

    msgpack_sbuffer conv;
    msgpack_sbuffer_init(&conv);
    const uint8_t *body = p->payload;
    size_t blen = p->payload_len;
    if (body_msgpack(p->flag, &body, &blen, &conv) != 0) {
        if (twoway)
            link_answer_error(l, p->seq, FPNN_EC_PROTO_JSON_CONVERT, "quest body is not valid JSON");
    } else if (strcmp(method, "ping") == 0) {
        if (twoway)
            link_answer(l, p->seq, 0, EMPTY_MAP, sizeof EMPTY_MAP);
    } else if (c->opt.on_quest && !c->opt.pass_repeated_pushes &&
               (c->dedup || (c->dedup = rtm_dedup_new(PUSH_DEDUP_KEEP)) != NULL) &&
               rtm_dedup_repeat(c->dedup, method, body, blen)) {
        if (twoway) /* the first one was passed on, and answered there */
            link_answer(l, p->seq, 0, EMPTY_MAP, sizeof EMPTY_MAP);
    } else if (c->opt.on_quest) {
        rtm_quest q = {
            .method = method,
            .payload = body,
            .payload_len = blen,
            .twoway = twoway,
            .id = twoway ? (l->gen << 32 | p->seq) : 0,
        };
        c->opt.on_quest(c, &q, c->opt.arg);
    } else if (twoway) {
        link_answer_error(l, p->seq, FPNN_EC_CORE_UNKNOWN_METHOD, "unknown method");
    }
    msgpack_sbuffer_destroy(&conv);
}

/* Parses and dispatches every complete packet in l->in. */
static void link_parse(rtm_client *c, rtm_link *l)
{
    while (!l->closing && rtm_buf_pending(&l->in) > 0) {
        fpnn_packet p;
        long n = fpnn_parse(rtm_buf_head(&l->in), rtm_buf_pending(&l->in), c->opt.max_packet, &p);
        if (n == FPNN_PARSE_MORE)
            return;
        if (n < 0) {
            const char *reason = n == FPNN_PARSE_TOO_LARGE ? "peer sent a packet larger than max_packet"
                                                           : "peer sent bytes that are not FPNN";
            if (c->st == ST_HANDSHAKE)
                reason = "encryption handshake failed: the answer to *key does not decrypt (wrong server key?)";
            LOG_WARN("librtm %s:%u: %s", c->host, c->opt.port, reason);
            link_lost(l, reason);
            return;
        }
        if (p.mtype == FPNN_MT_ANSWER)
            on_answer(c, &p);
        else
            on_quest(c, l, &p);
        if (l->closing)
            return;
        rtm_buf_consume(&l->in, (size_t)n);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rtm_link *l = h->data;
    *buf = uv_buf_init(l->rbuf, sizeof l->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    rtm_link *l = s->data;
    rtm_client *c = l->c;
    if (l->closing)
        return;
    if (nread < 0) {
        char reason[128];
        if (nread == UV_EOF)
            snprintf(reason, sizeof reason, "connection closed by peer");
        else
            snprintf(reason, sizeof reason, "read failed: %s", uv_strerror((int)nread));
        link_lost(l, reason);
        return;
    }
    if (nread == 0)
        return;
    c->last_recv = uv_now(&c->loop);
    uint8_t *data = (uint8_t *)buf->base;
    size_t len = (size_t)nread;
    const char *err = NULL;
    if (!l->crypto) {
        if (rtm_buf_append(&l->in, data, len) != 0)
            err = "out of memory";
    } else if (fpnn_crypto_stream_mode(l->crypto)) {
        if (fpnn_crypto_decrypt_stream(l->crypto, data, len) != 0 || rtm_buf_append(&l->in, data, len) != 0)
            err = "decryption failed";
    } else {
        if (rtm_buf_append(&l->raw, data, len) != 0)
            err = "out of memory";
        while (!err && rtm_buf_pending(&l->raw) >= 4) {
            const uint8_t *h = rtm_buf_head(&l->raw);
            size_t plen = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
            if (plen > c->opt.max_packet) {
                err = "peer sent a package larger than max_packet";
                break;
            }
            if (rtm_buf_pending(&l->raw) < 4 + plen)
                break;
            if (rtm_buf_reserve(&l->in, plen) != 0 ||
                fpnn_crypto_decrypt_package(l->crypto, rtm_buf_head(&l->raw) + 4, plen, l->in.data + l->in.len) != 0) {
                err = "decryption failed";
                break;
            }
            l->in.len += plen;
            rtm_buf_consume(&l->raw, 4 + plen);
        }
    }
    if (err) {
        LOG_WARN("librtm %s:%u: %s", c->host, c->opt.port, err);
        link_lost(l, err);
        return;
    }
    link_parse(c, l);
    link_flush(l);
}

/* ------------------------------------------------------------------ */
/* Connecting                                                            */

static void try_next_address(rtm_client *c);

static void on_connect(uv_connect_t *req, int status)
{
    rtm_link *l = req->data;
    rtm_client *c = l->c;
    if (l->closing || c->link != l)
        return;
    if (status < 0) {
        snprintf(c->connect_error, sizeof c->connect_error, "%s", uv_strerror(status));
        link_close(l);
        c->link = NULL;
        try_next_address(c);
        return;
    }
    uv_freeaddrinfo(c->ai_list);
    c->ai_list = c->ai_next = NULL;
    uv_tcp_nodelay(&l->tcp, 1);
    uv_tcp_keepalive(&l->tcp, 1, 60);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc < 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "read failed: %s", uv_strerror(rc));
        drop(c, reason);
        return;
    }
    if (c->encrypt) {
        if (start_handshake(c, l) != 0)
            drop(c, "cannot set up encryption (key agreement failed)");
        return;
    }
    established(c);
}

static void try_next_address(rtm_client *c)
{
    while (c->ai_next) {
        struct addrinfo *ai = c->ai_next;
        c->ai_next = ai->ai_next;
        rtm_link *l = calloc(1, sizeof *l);
        if (!l) {
            snprintf(c->connect_error, sizeof c->connect_error, "out of memory");
            break;
        }
        l->c = c;
        c->link_gen = c->link_gen % 0xffffffffu + 1; /* 32 bits, never 0 */
        l->gen = c->link_gen;
        if (uv_tcp_init(&c->loop, &l->tcp) != 0) {
            free(l);
            snprintf(c->connect_error, sizeof c->connect_error, "cannot create a socket");
            break;
        }
        l->tcp.data = l;
        l->creq.data = l;
        c->link = l;
        int rc = uv_tcp_connect(&l->creq, &l->tcp, ai->ai_addr, on_connect);
        if (rc == 0)
            return;
        snprintf(c->connect_error, sizeof c->connect_error, "%s", uv_strerror(rc));
        link_close(l);
        c->link = NULL;
    }
    char reason[256];
    snprintf(reason, sizeof reason, "connect to %s:%u: %s", c->host, c->opt.port,
             c->connect_error[0] ? c->connect_error : "no address");
    drop(c, reason);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gai_req *g = (gai_req *)req;
    rtm_client *c = g->c;
    bool stale = c->stopping || g->attempt != c->attempt || c->st != ST_RESOLVING;
    free(g);
    if (stale) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    if (status < 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "cannot resolve %s: %s", c->host, uv_strerror(status));
        drop(c, reason);
        return;
    }
    c->ai_list = c->ai_next = res;
    c->connect_error[0] = '\0';
    c->st = ST_CONNECTING;
    try_next_address(c);
}

static void start_connect(rtm_client *c)
{
    if (c->st != ST_IDLE || c->stopping)
        return;
    c->user_closed = false;
    c->attempt++;
    c->st = ST_RESOLVING;
    uv_timer_start(&c->conn_timer, on_conn_timer, c->opt.connect_timeout_ms, 0);
    LOG_DEBUG("librtm %s:%u: connecting", c->host, c->opt.port);
    gai_req *g = calloc(1, sizeof *g);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int rc = g ? 0 : UV_ENOMEM;
    if (g) {
        g->c = c;
        g->attempt = c->attempt;
        rc = uv_getaddrinfo(&c->loop, &g->req, on_resolved, c->host, c->port_str, &hints);
        if (rc != 0)
            free(g);
    }
    if (rc != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "cannot resolve %s: %s", c->host, uv_strerror(rc));
        drop(c, reason);
    }
}

/* ------------------------------------------------------------------ */
/* Requests from the API                                                 */

static void handle_quest(rtm_client *c, cmd *m)
{
    if (m->pre_error) {
        complete_local(c, m, m->pre_error,
                       m->pre_error == FPNN_EC_PROTO_JSON_CONVERT ? "payload is not a JSON object" : "bad request");
        return;
    }
    if (c->stopping) {
        complete_local(c, m, FPNN_EC_CORE_CONNECTION_CLOSED, "client is shutting down");
        return;
    }
    do
        m->seq = c->next_seq++;
    while (m->seq == 0 || table_find(c, m->seq));
    fpnn_patch_seq(m->pkt, m->seq);
    m->deadline = uv_now(&c->loop) + (m->timeout_ms ? m->timeout_ms : c->opt.quest_timeout_ms);
    if (table_put(c, m) != 0 || heap_push(c, m) != 0) {
        table_remove(c, m);
        complete_local(c, m, FPNN_EC_CORE_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (c->st == ST_CONNECTED && output_full(c->link)) {
        pending_detach(c, m);
        complete_local(c, m, FPNN_EC_CORE_SEND_ERROR, "output queue full (the peer does not read)");
    } else if (c->st == ST_CONNECTED) {
        write_cmd(c, m);
    } else {
        unsent_push(c, m);
        start_connect(c);
    }
}

static void process_requests(rtm_client *c)
{
    uv_mutex_lock(&c->mu);
    cmd *list = c->q_head;
    c->q_head = c->q_tail = NULL;
    bool stop = c->stop_requested;
    uv_mutex_unlock(&c->mu);

    uv_update_time(&c->loop);
    while (list) {
        cmd *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->kind) {
        case CMD_QUEST:
            handle_quest(c, m);
            break;
        case CMD_ONEWAY:
            if (c->st == ST_CONNECTED) {
                if (!output_full(c->link))
                    write_cmd(c, m);
                cmd_free(m);
            } else if (c->stopping) {
                cmd_free(m);
            } else {
                unsent_push(c, m);
                start_connect(c);
            }
            break;
        case CMD_ANSWER:
            if (c->link && !c->link->closing && (c->st == ST_CONNECTED || c->st == ST_HANDSHAKE) &&
                (m->quest_id >> 32) == c->link->gen) {
                fpnn_patch_seq(m->pkt, (uint32_t)m->quest_id);
                write_cmd(c, m);
            }
            cmd_free(m);
            break;
        case CMD_CONNECT:
            c->user_closed = false;
            if (c->st == ST_BACKOFF) {
                uv_timer_stop(&c->conn_timer);
                c->st = ST_IDLE;
            }
            if (m->waiter) {
                if (c->st == ST_CONNECTED || c->stopping) {
                    waiter_resolve(c, m->waiter, c->stopping ? FPNN_EC_CORE_CONNECTION_CLOSED : 0);
                } else {
                    m->waiter->next = c->waiters;
                    c->waiters = m->waiter;
                }
                m->waiter = NULL;
            }
            start_connect(c);
            cmd_free(m);
            break;
        case CMD_CLOSE:
            c->user_closed = true;
            if (c->st == ST_BACKOFF) {
                uv_timer_stop(&c->conn_timer);
                c->st = ST_IDLE;
            }
            drop(c, "closed by the application");
            cmd_free(m);
            break;
        }
    }
    arm_quest_timer(c);
    link_flush(c->link);

    if (stop && !c->stopping) {
        c->user_closed = true;
        c->stopping = true;
        if (c->st == ST_BACKOFF) {
            uv_timer_stop(&c->conn_timer);
            c->st = ST_IDLE;
        }
        drop(c, "client freed");
        fail_all_pending(c, "client freed");
        resolve_waiters(c, FPNN_EC_CORE_CONNECTION_CLOSED);
        uv_close((uv_handle_t *)&c->wake, NULL);
        uv_close((uv_handle_t *)&c->quest_timer, NULL);
        uv_close((uv_handle_t *)&c->conn_timer, NULL);
        uv_close((uv_handle_t *)&c->idle_timer, NULL);
    }
}

static void on_wake(uv_async_t *a)
{
    process_requests(a->data);
}

static void io_main(void *arg)
{
    rtm_client *c = arg;
    /* A write to a link the peer closed must fail with EPIPE, not kill the
     * application: SIGPIPE is blocked on this thread only, leaving the
     * process's own handling alone. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    uv_mutex_lock(&c->mu);
    c->io_tid = uv_thread_self();
    c->started = true;
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->mu);
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* Public API                                                            */

void rtm_options_init(rtm_options *o)
{
    memset(o, 0, sizeof *o);
    o->bits = 128;
    o->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    o->quest_timeout_ms = DEFAULT_TIMEOUT_MS;
    o->max_packet = DEFAULT_MAX_PACKET;
    o->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    o->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

rtm_client *rtm_client_new(const rtm_options *o, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!o || !o->host || !o->host[0]) {
        set_err(err, errlen, "no host given");
        return NULL;
    }
    if (o->port == 0) {
        set_err(err, errlen, "no port given");
        return NULL;
    }
    if (o->bits != 0 && o->bits != 128 && o->bits != 256) {
        set_err(err, errlen, "bits must be 128 or 256");
        return NULL;
    }
    rtm_client *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->opt = *o;
    c->opt.server_key_pem = NULL;
    c->opt.server_key = NULL;
    if (!c->opt.bits)
        c->opt.bits = 128;
    if (!c->opt.connect_timeout_ms)
        c->opt.connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!c->opt.quest_timeout_ms)
        c->opt.quest_timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!c->opt.max_packet)
        c->opt.max_packet = DEFAULT_MAX_PACKET;
    if (!c->opt.reconnect_min_ms)
        c->opt.reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    if (c->opt.reconnect_max_ms < c->opt.reconnect_min_ms)
        c->opt.reconnect_max_ms = c->opt.reconnect_min_ms > DEFAULT_RECONNECT_MAX_MS ? c->opt.reconnect_min_ms
                                                                                      : DEFAULT_RECONNECT_MAX_MS;
    c->backoff_ms = c->opt.reconnect_min_ms;
    c->host = strdup(o->host);
    snprintf(c->port_str, sizeof c->port_str, "%u", o->port);
    c->next_seq = 1;
    c->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ULL;
    if (!c->host) {
        set_err(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    if (o->server_key_pem) {
        if (rtm_load_public_key(o->server_key_pem, c->server_pub, err, errlen) != 0) {
            free(c->host);
            free(c);
            return NULL;
        }
        c->encrypt = true;
    } else if (o->server_key) {
        memcpy(c->server_pub, o->server_key, RTM_PUBKEY_LEN);
        c->encrypt = true;
    }

    if (uv_loop_init(&c->loop) != 0) {
        set_err(err, errlen, "cannot create an event loop");
        free(c->host);
        free(c);
        return NULL;
    }
    uv_mutex_init(&c->mu);
    uv_cond_init(&c->cond);
    uv_async_init(&c->loop, &c->wake, on_wake);
    c->wake.data = c;
    uv_timer_init(&c->loop, &c->quest_timer);
    c->quest_timer.data = c;
    uv_timer_init(&c->loop, &c->conn_timer);
    c->conn_timer.data = c;
    uv_timer_init(&c->loop, &c->idle_timer);
    c->idle_timer.data = c;

    if (uv_thread_create(&c->thread, io_main, c) != 0) {
        set_err(err, errlen, "cannot start the I/O thread");
        uv_close((uv_handle_t *)&c->wake, NULL);
        uv_close((uv_handle_t *)&c->quest_timer, NULL);
        uv_close((uv_handle_t *)&c->conn_timer, NULL);
        uv_close((uv_handle_t *)&c->idle_timer, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        uv_cond_destroy(&c->cond);
        uv_mutex_destroy(&c->mu);
        free(c->host);
        free(c);
        return NULL;
    }
    uv_mutex_lock(&c->mu);
    while (!c->started)
        uv_cond_wait(&c->cond, &c->mu);
    uv_mutex_unlock(&c->mu);
    return c;
}

void rtm_client_free(rtm_client *c)
{
    if (!c)
        return;
    if (on_io_thread(c)) {
        LOG_ERROR("librtm: rtm_client_free called from a librtm callback; ignored");
        return;
    }
    uv_mutex_lock(&c->mu);
    c->stop_requested = true;
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->wake);
    uv_thread_join(&c->thread);
    /* Requests that raced with the stop were never seen by the loop. */
    cmd *m = c->q_head;
    while (m) {
        cmd *next = m->next;
        if (m->waiter) {
            uv_mutex_lock(&c->mu);
            waiter_release(m->waiter);
            uv_mutex_unlock(&c->mu);
        }
        cmd_free(m);
        m = next;
    }
    uv_loop_close(&c->loop);
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c->heap);
    free(c->host);
    rtm_dedup_free(c->dedup);
    free(c);
}

int rtm_client_connect(rtm_client *c)
{
    if (!c)
        return -1;
    cmd *m = cmd_new(CMD_CONNECT);
    if (!m)
        return -1;
    submit(c, m);
    return 0;
}

int rtm_client_close(rtm_client *c)
{
    if (!c)
        return -1;
    cmd *m = cmd_new(CMD_CLOSE);
    if (!m)
        return -1;
    submit(c, m);
    return 0;
}

bool rtm_client_is_connected(rtm_client *c)
{
    if (!c)
        return false;
    uv_mutex_lock(&c->mu);
    bool v = c->pub_connected;
    uv_mutex_unlock(&c->mu);
    return v;
}

void rtm_client_last_error(rtm_client *c, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    if (!c) {
        buf[0] = '\0';
        return;
    }
    uv_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->last_error);
    uv_mutex_unlock(&c->mu);
}

int rtm_client_wait_connected(rtm_client *c, unsigned timeout_ms)
{
    if (!c)
        return FPNN_EC_CORE_INVALID_CONNECTION;
    if (on_io_thread(c))
        return FPNN_EC_CORE_FORBIDDEN;
    conn_waiter *w = calloc(1, sizeof *w);
    cmd *m = cmd_new(CMD_CONNECT);
    if (!w || !m) {
        free(w);
        cmd_free(m);
        return FPNN_EC_CORE_UNKNOWN_ERROR;
    }
    w->refs = 2; /* this thread and the I/O thread */
    m->waiter = w;
    submit(c, m);
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    uv_mutex_lock(&c->mu);
    while (!w->done) {
        uint64_t now = uv_hrtime();
        if (now >= deadline)
            break;
        uv_cond_timedwait(&c->cond, &c->mu, deadline - now);
    }
    int rc = w->done ? w->rc : FPNN_EC_CORE_TIMEOUT;
    waiter_release(w);
    uv_mutex_unlock(&c->mu);
    return rc;
}

static bool method_ok(const char *method)
{
    size_t n = method ? strlen(method) : 0;
    return n > 0 && n <= FPNN_MAX_METHOD;
}

int rtm_send_quest(rtm_client *c, const char *method, const void *payload, size_t len, unsigned timeout_ms,
                   rtm_answer_cb cb, void *arg)
{
    if (!c || !cb || !method_ok(method) || (!payload && len))
        return -1;
    cmd *m = cmd_new(CMD_QUEST);
    if (!m || cmd_encode(m, FPNN_MT_TWOWAY, 0, method, strlen(method), payload, len) != 0) {
        cmd_free(m);
        return -1;
    }
    m->cb = cb;
    m->arg = arg;
    m->timeout_ms = timeout_ms;
    submit(c, m);
    return 0;
}

int rtm_send_quest_json(rtm_client *c, const char *method, const char *json, unsigned timeout_ms,
                        rtm_answer_cb cb, void *arg)
{
    if (!c || !cb || !method_ok(method) || !json)
        return -1;
    uint8_t *body = NULL;
    size_t blen = 0;
    if (rtm_payload_from_json(json, strlen(json), &body, &blen) != 0) {
        cmd *m = cmd_new(CMD_QUEST);
        if (!m)
            return -1;
        m->cb = cb;
        m->arg = arg;
        m->pre_error = FPNN_EC_PROTO_JSON_CONVERT;
        submit(c, m);
        return 0;
    }
    int rc = rtm_send_quest(c, method, body, blen, timeout_ms, cb, arg);
    free(body);
    return rc;
}

int rtm_send_oneway(rtm_client *c, const char *method, const void *payload, size_t len)
{
    if (!c || !method_ok(method) || (!payload && len))
        return -1;
    cmd *m = cmd_new(CMD_ONEWAY);
    if (!m || cmd_encode(m, FPNN_MT_ONEWAY, 0, method, strlen(method), payload, len) != 0) {
        cmd_free(m);
        return -1;
    }
    submit(c, m);
    return 0;
}

static int send_answer(rtm_client *c, uint64_t quest_id, uint8_t status, const void *payload, size_t len)
{
    if (!c || quest_id == 0 || (!payload && len))
        return -1;
    cmd *m = cmd_new(CMD_ANSWER);
    if (!m || cmd_encode(m, FPNN_MT_ANSWER, status, NULL, 0, payload, len) != 0) {
        cmd_free(m);
        return -1;
    }
    m->quest_id = quest_id;
    submit(c, m);
    return 0;
}

int rtm_client_answer(rtm_client *c, uint64_t quest_id, const void *payload, size_t len)
{
    return send_answer(c, quest_id, 0, payload, len);
}

int rtm_client_answer_error(rtm_client *c, uint64_t quest_id, int64_t code, const char *ex)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rtm_pack_error(&sb, code, ex ? ex : "", "librtm");
    int rc = send_answer(c, quest_id, 1, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Blocking calls                                                        */

typedef struct call_wait {
    uv_mutex_t mu;
    uv_cond_t cond;
    bool done;
    rtm_result *out;
} call_wait;

static char *dup_or_empty(const char *s)
{
    char *d = strdup(s ? s : "");
    return d;
}

static void call_done(rtm_client *c, const rtm_answer *a, void *arg)
{
    call_wait *w = arg;
    rtm_result *r = w->out;
    r->code = a->code;
    r->local = a->local;
    r->ex = dup_or_empty(a->ex);
    if (a->payload && a->payload_len && (r->payload = malloc(a->payload_len))) {
        memcpy(r->payload, a->payload, a->payload_len);
        r->payload_len = a->payload_len;
    }
    uv_mutex_lock(&w->mu);
    w->done = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->mu);
}

static int64_t local_result(rtm_result *out, int64_t code, const char *ex)
{
    out->code = code;
    out->local = true;
    out->ex = dup_or_empty(ex);
    return code;
}

static int64_t call_common(rtm_client *c, const char *method, const void *payload, size_t len, const char *json,
                           unsigned timeout_ms, rtm_result *out)
{
    if (!out)
        return FPNN_EC_CORE_UNKNOWN_ERROR;
    memset(out, 0, sizeof *out);
    if (!c || !method_ok(method))
        return local_result(out, FPNN_EC_CORE_UNKNOWN_ERROR, "bad arguments");
    if (on_io_thread(c))
        return local_result(out, FPNN_EC_CORE_FORBIDDEN, "rtm_call cannot be used from a librtm callback");
    call_wait w;
    memset(&w, 0, sizeof w);
    w.out = out;
    uv_mutex_init(&w.mu);
    uv_cond_init(&w.cond);
    int rc = json ? rtm_send_quest_json(c, method, json, timeout_ms, call_done, &w)
                  : rtm_send_quest(c, method, payload, len, timeout_ms, call_done, &w);
    if (rc == 0) {
        /* The I/O thread calls call_done exactly once: answer, timeout or
         * closed link. */
        uv_mutex_lock(&w.mu);
        while (!w.done)
            uv_cond_wait(&w.cond, &w.mu);
        uv_mutex_unlock(&w.mu);
    }
    uv_cond_destroy(&w.cond);
    uv_mutex_destroy(&w.mu);
    if (rc != 0)
        return local_result(out, FPNN_EC_CORE_UNKNOWN_ERROR, "bad arguments");
    if (!out->ex)
        return local_result(out, FPNN_EC_CORE_UNKNOWN_ERROR, "out of memory");
    return out->code;
}

int64_t rtm_call(rtm_client *c, const char *method, const void *payload, size_t len, unsigned timeout_ms,
                 rtm_result *out)
{
    return call_common(c, method, payload, len, NULL, timeout_ms, out);
}

int64_t rtm_call_json(rtm_client *c, const char *method, const char *json, unsigned timeout_ms, rtm_result *out)
{
    if (!json) {
        if (out)
            memset(out, 0, sizeof *out);
        return out ? local_result(out, FPNN_EC_PROTO_JSON_CONVERT, "no JSON payload") : FPNN_EC_PROTO_JSON_CONVERT;
    }
    return call_common(c, method, NULL, 0, json, timeout_ms, out);
}

void rtm_result_free(rtm_result *r)
{
    if (!r)
        return;
    free(r->ex);
    free(r->payload);
    memset(r, 0, sizeof *r);
}
