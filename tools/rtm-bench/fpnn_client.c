/* fpnn_client.c — rtm-bench's lean multi-connection FPNN client (API and
 * design in fpnn_client.h): TCP and WebSocket transports, a seq table shared
 * by all connections for pipelined quests, one batched write per connection
 * per loop turn (after the turn's I/O callbacks, and before the loop waits
 * again, so that quests sent from a timer do not wait for the next event),
 * a read buffer shared by the loop. */
#include "fpnn_client.h"

#include "buf.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FC_READ_BUF (64 * 1024)
#define FC_KEEP_BUF (16 * 1024)   /* buffers larger than this are freed when empty */
#define FC_WS_MAX_HANDSHAKE 4096

enum { ST_CONNECTING, ST_WS_HANDSHAKE, ST_OPEN, ST_CLOSING };

typedef struct pend {
    uint32_t seq;          /* 0 = free slot */
    fc_conn *c;
    fc_answer_cb cb;
    void *arg;
    uint64_t cookie;
} pend;

struct fc_ctx {
    uv_loop_t *loop;
    fc_callbacks cb;
    size_t max_packet;
    uint8_t *rbuf;
    uv_check_t flusher;      /* after I/O callbacks */
    uv_prepare_t preflusher; /* before the loop waits: sends from timers */
    int open_handles;        /* the two above until closed */
    fc_conn *dirty;
    uint32_t next_seq;
    pend *tab;
    size_t tab_cap, tab_used;
    uint64_t rng;
};

struct fc_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    fc_ctx *ctx;
    void *user;
    rtm_buf in;
    rtm_buf out;
    rtm_buf frag;          /* WebSocket: a fragmented message being assembled */
    fc_conn *next_dirty;
    const char *ws_path;
    uint32_t pending;
    uint8_t state;
    uint8_t ws;
    uint8_t dirty;
    uint8_t writing;
    int close_status;
};

typedef struct wreq {
    uv_write_t req;
    fc_conn *c;
    size_t len;
    uint8_t data[];
} wreq;

/* ---- seq table: open addressing, linear probing, backward-shift delete ---- */

static size_t slot_of(const fc_ctx *x, uint32_t seq)
{
    return (size_t)((seq * 2654435761u) & (x->tab_cap - 1));
}

static int tab_put(fc_ctx *x, const pend *p);

static int tab_grow(fc_ctx *x)
{
    size_t old_cap = x->tab_cap;
    pend *old = x->tab;
    size_t cap = old_cap ? old_cap * 2 : 1024;
    pend *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    x->tab = t;
    x->tab_cap = cap;
    x->tab_used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].seq)
            tab_put(x, &old[i]);
    free(old);
    return 0;
}

static int tab_put(fc_ctx *x, const pend *p)
{
    if ((x->tab_used + 1) * 2 > x->tab_cap && tab_grow(x) != 0)
        return -1;
    size_t i = slot_of(x, p->seq);
    while (x->tab[i].seq)
        i = (i + 1) & (x->tab_cap - 1);
    x->tab[i] = *p;
    x->tab_used++;
    return 0;
}

static void tab_del_at(fc_ctx *x, size_t i)
{
    size_t mask = x->tab_cap - 1;
    x->tab[i].seq = 0;
    x->tab_used--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!x->tab[j].seq)
            return;
        size_t k = slot_of(x, x->tab[j].seq);
        /* Move j into the hole at i unless its home k lies cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            x->tab[i] = x->tab[j];
            x->tab[j].seq = 0;
            i = j;
        }
    }
}

static int tab_take(fc_ctx *x, uint32_t seq, const fc_conn *c, pend *out)
{
    if (!x->tab_cap)
        return -1;
    size_t i = slot_of(x, seq);
    while (x->tab[i].seq) {
        if (x->tab[i].seq == seq) {
            if (x->tab[i].c != c)
                return -1;
            *out = x->tab[i];
            tab_del_at(x, i);
            return 0;
        }
        i = (i + 1) & (x->tab_cap - 1);
    }
    return -1;
}

/* ---- output ---- */

static void mark_dirty(fc_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->next_dirty = c->ctx->dirty;
    c->ctx->dirty = c;
}

static uint32_t next_mask(fc_ctx *x)
{
    uint64_t v = x->rng;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    x->rng = v;
    return (uint32_t)v;
}

/* Reserves room for a data unit of n bytes (a masked binary frame for WS)
 * and returns where its body goes; fc_unit_end() masks it. */
static uint8_t *unit_begin(fc_conn *c, size_t n, uint8_t opcode, uint8_t **mask_at)
{
    if (!c->ws || c->state != ST_OPEN) {
        if (rtm_buf_reserve(&c->out, n) != 0)
            return NULL;
        *mask_at = NULL;
        uint8_t *p = c->out.data + c->out.len;
        c->out.len += n;
        return p;
    }
    if (rtm_buf_reserve(&c->out, n + 14) != 0)
        return NULL;
    uint8_t *h = c->out.data + c->out.len;
    size_t hl;
    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)(0x80 | n);
        hl = 2;
    } else if (n < 65536) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t m = next_mask(c->ctx);
    memcpy(h + hl, &m, 4);
    *mask_at = h + hl;
    c->out.len += hl + 4 + n;
    return h + hl + 4;
}

static void unit_end(uint8_t *body, size_t n, const uint8_t *mask)
{
    if (!mask)
        return;
    for (size_t i = 0; i < n; i++)
        body[i] ^= mask[i & 3];
}

static void close_with(fc_conn *c, int status);

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    fc_conn *c = w->c;
    free(w);
    c->writing = 0;
    if (c->state == ST_CLOSING)
        return;
    if (status < 0) {
        close_with(c, status);
        return;
    }
    if (rtm_buf_pending(&c->out))
        mark_dirty(c);
}

static void flush_conn(fc_conn *c)
{
    if (c->state == ST_CLOSING || c->state == ST_CONNECTING || c->writing)
        return;
    size_t n = rtm_buf_pending(&c->out);
    if (!n)
        return;
    uv_buf_t b = uv_buf_init((char *)rtm_buf_head(&c->out), (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == UV_EAGAIN || r == UV_ENOSYS)
        r = 0;
    if (r < 0) {
        close_with(c, r);
        return;
    }
    if ((size_t)r < n) {
        size_t rest = n - (size_t)r;
        wreq *w = malloc(sizeof *w + rest);
        if (!w) {
            close_with(c, UV_ENOMEM);
            return;
        }
        w->c = c;
        w->len = rest;
        memcpy(w->data, rtm_buf_head(&c->out) + r, rest);
        uv_buf_t wb = uv_buf_init((char *)w->data, (unsigned)rest);
        int e = uv_write(&w->req, (uv_stream_t *)&c->tcp, &wb, 1, on_written);
        if (e < 0) {
            free(w);
            close_with(c, e);
            return;
        }
        c->writing = 1;
    }
    if (c->out.cap > FC_KEEP_BUF)
        rtm_buf_free(&c->out);
    else
        rtm_buf_reset(&c->out);
}

static void flush_dirty(fc_ctx *x)
{
    while (x->dirty) {
        fc_conn *list = x->dirty;
        x->dirty = NULL;
        while (list) {
            fc_conn *c = list;
            list = c->next_dirty;
            c->dirty = 0;
            c->next_dirty = NULL;
            flush_conn(c);
        }
    }
}

static void on_check(uv_check_t *h)
{
    flush_dirty(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    flush_dirty(h->data);
}

/* ---- closing ---- */

static void fail_pending(fc_conn *c)
{
    fc_ctx *x = c->ctx;
    for (size_t i = 0; c->pending && i < x->tab_cap;) {
        if (x->tab[i].seq && x->tab[i].c == c) {
            pend p = x->tab[i];
            tab_del_at(x, i);
            c->pending--;
            p.cb(c, NULL, FPNN_EC_CORE_CONNECTION_CLOSED, p.arg, p.cookie);
            continue; /* slot i now holds a shifted entry (or is empty) */
        }
        i++;
    }
}

static void on_closed(uv_handle_t *h)
{
    fc_conn *c = h->data;
    fc_ctx *x = c->ctx;
    if (c->dirty) { /* unlink (rare: closed after being queued this turn) */
        fc_conn **pp = &x->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->next_dirty;
        if (*pp)
            *pp = c->next_dirty;
    }
    if (x->cb.on_close)
        x->cb.on_close(c, c->close_status);
    rtm_buf_free(&c->in);
    rtm_buf_free(&c->out);
    rtm_buf_free(&c->frag);
    free(c);
}

static void close_with(fc_conn *c, int status)
{
    if (c->state == ST_CLOSING)
        return;
    c->state = ST_CLOSING;
    c->close_status = status;
    fail_pending(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void fc_close(fc_conn *c)
{
    close_with(c, 0);
}

int fc_is_open(const fc_conn *c)
{
    return c->state == ST_OPEN;
}

/* ---- input ---- */

static const uint8_t empty_map = 0x80;

/* Handles one complete FPNN packet; returns -1 if the link must close or
 * was closed by a callback. */
static int on_packet(fc_conn *c, const uint8_t *data, size_t len)
{
    fpnn_packet p;
    long n = fpnn_parse(data, len, c->ctx->max_packet, &p);
    if (n <= 0 || (size_t)n != len) {
        close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
        return -1;
    }
    if (p.mtype == FPNN_MT_ANSWER) {
        pend q;
        if (tab_take(c->ctx, p.seq, c, &q) == 0) {
            c->pending--;
            q.cb(c, &p, 0, q.arg, q.cookie);
        }
    } else {
        if (c->ctx->cb.on_quest)
            c->ctx->cb.on_quest(c, &p);
        if (c->state != ST_OPEN)
            return -1;
        if (p.mtype == FPNN_MT_TWOWAY) {
            size_t an = fpnn_encoded_size(FPNN_MT_ANSWER, 0, 1);
            uint8_t *mask;
            uint8_t *b = unit_begin(c, an, 0x2, &mask);
            if (!b) {
                close_with(c, UV_ENOMEM);
                return -1;
            }
            fpnn_encode(b, FPNN_FLAG_MSGPACK, FPNN_MT_ANSWER, 0, p.seq, NULL, 0, &empty_map, 1);
            unit_end(b, an, mask);
            mark_dirty(c);
        }
    }
    return c->state == ST_OPEN ? 0 : -1;
}

static int ws_control(fc_conn *c, uint8_t op, const uint8_t *pl, size_t n)
{
    if (op == 0x8) {
        close_with(c, FPNN_EC_CORE_CONNECTION_CLOSED);
        return -1;
    }
    if (op == 0x9) { /* ping: pong with the same body */
        uint8_t *mask;
        uint8_t *b = unit_begin(c, n, 0xA, &mask);
        if (!b) {
            close_with(c, UV_ENOMEM);
            return -1;
        }
        memcpy(b, pl, n);
        unit_end(b, n, mask);
        mark_dirty(c);
    }
    return 0;
}

/* Consumes complete units from data; returns bytes consumed or -1. */
static long process(fc_conn *c, uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        uint8_t *d = data + pos;
        size_t left = len - pos;
        if (c->state == ST_WS_HANDSHAKE) {
            uint8_t *end = NULL;
            for (size_t i = 0; i + 3 < left; i++)
                if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n') {
                    end = d + i + 4;
                    break;
                }
            if (!end) {
                if (left > FC_WS_MAX_HANDSHAKE) {
                    close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
                    return -1;
                }
                break;
            }
            if (left < 12 || memcmp(d, "HTTP/1.1 101", 12) != 0) {
                c->state = ST_OPEN; /* so that on_open reports the failure once */
                close_with(c, FPNN_EC_CORE_FORBIDDEN);
                c->ctx->cb.on_open(c, FPNN_EC_CORE_FORBIDDEN);
                return -1;
            }
            pos += (size_t)(end - d);
            c->state = ST_OPEN;
            c->ctx->cb.on_open(c, 0);
            if (c->state != ST_OPEN)
                return -1;
            continue;
        }
        if (!c->ws) {
            fpnn_packet p;
            long n = fpnn_parse(d, left, c->ctx->max_packet, &p);
            if (n == FPNN_PARSE_MORE)
                break;
            if (n < 0) {
                close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
                return -1;
            }
            pos += (size_t)n;
            if (on_packet(c, d, (size_t)n) != 0)
                return -1;
            continue;
        }
        /* WebSocket frame from the server (unmasked, but accept a mask). */
        if (left < 2)
            break;
        uint8_t fin = d[0] & 0x80, op = d[0] & 0x0f, masked = d[1] & 0x80;
        uint64_t plen = d[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (left < 4)
                break;
            plen = (uint64_t)d[2] << 8 | d[3];
            hl = 4;
        } else if (plen == 127) {
            if (left < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | d[2 + i];
            hl = 10;
        }
        if (masked)
            hl += 4;
        if (plen > c->ctx->max_packet + 16) {
            close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
            return -1;
        }
        if (left < hl + plen)
            break;
        uint8_t *pl = d + hl;
        if (masked)
            for (uint64_t i = 0; i < plen; i++)
                pl[i] ^= d[hl - 4 + (i & 3)];
        pos += hl + (size_t)plen;
        if (op >= 0x8) {
            if (ws_control(c, op, pl, (size_t)plen) != 0)
                return -1;
            continue;
        }
        if (op == 0x1 || (op == 0x0 && !c->frag.len) || (op == 0x2 && c->frag.len)) {
            close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
            return -1;
        }
        if (fin && !c->frag.len) {
            if (on_packet(c, pl, (size_t)plen) != 0)
                return -1;
            continue;
        }
        if (c->frag.len + plen > c->ctx->max_packet || rtm_buf_append(&c->frag, pl, (size_t)plen) != 0) {
            close_with(c, FPNN_EC_PROTO_INVALID_PACKAGE);
            return -1;
        }
        if (fin) {
            int r = on_packet(c, rtm_buf_head(&c->frag), rtm_buf_pending(&c->frag));
            rtm_buf_free(&c->frag);
            if (r != 0)
                return -1;
        }
    }
    return (long)pos;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fc_conn *c = h->data;
    buf->base = (char *)c->ctx->rbuf;
    buf->len = FC_READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fc_conn *c = s->data;
    if (nread < 0) {
        close_with(c, nread == UV_EOF ? FPNN_EC_CORE_CONNECTION_CLOSED : (int)nread);
        return;
    }
    if (nread == 0 || c->state == ST_CLOSING)
        return;
    if (rtm_buf_pending(&c->in)) {
        if (rtm_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
            close_with(c, UV_ENOMEM);
            return;
        }
        long n = process(c, rtm_buf_head(&c->in), rtm_buf_pending(&c->in));
        if (n < 0)
            return;
        rtm_buf_consume(&c->in, (size_t)n);
        if (!rtm_buf_pending(&c->in) && c->in.cap > FC_KEEP_BUF)
            rtm_buf_free(&c->in);
        return;
    }
    long n = process(c, (uint8_t *)buf->base, (size_t)nread);
    if (n < 0)
        return;
    if ((size_t)n < (size_t)nread && rtm_buf_append(&c->in, buf->base + n, (size_t)nread - (size_t)n) != 0)
        close_with(c, UV_ENOMEM);
}

static void on_connect(uv_connect_t *req, int status)
{
    fc_conn *c = req->data;
    if (c->state == ST_CLOSING)
        return;
    if (status < 0) {
        c->state = ST_OPEN;
        close_with(c, status);
        c->ctx->cb.on_open(c, status);
        return;
    }
    int e = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (e < 0) {
        c->state = ST_OPEN;
        close_with(c, e);
        c->ctx->cb.on_open(c, e);
        return;
    }
    if (!c->ws) {
        c->state = ST_OPEN;
        c->ctx->cb.on_open(c, 0);
        return;
    }
    c->state = ST_WS_HANDSHAKE;
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    char host[64] = "127.0.0.1";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0 && peer.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&peer, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
    }
    char req_text[512];
    int n = snprintf(req_text, sizeof req_text,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: cnRtLWJlbmNoLWtleS0wMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     c->ws_path ? c->ws_path : "/service/websocket", host, port);
    if (rtm_buf_append(&c->out, req_text, (size_t)n) != 0) {
        c->state = ST_OPEN;
        close_with(c, UV_ENOMEM);
        c->ctx->cb.on_open(c, UV_ENOMEM);
        return;
    }
    mark_dirty(c);
}

static void free_handle(uv_handle_t *h)
{
    free(h->data);
}

/* With a source address, bind() would pick the port itself and has to
 * search for one that no socket of that address holds, TIME_WAIT ones
 * included: in churn, where this client closes every connection, that
 * search took 85 % of the generator's CPU and put 160 ms into the login
 * p99. IP_BIND_ADDRESS_NO_PORT leaves the port to connect(), which only
 * needs the whole 4-tuple to be free. */
static void defer_port_choice(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    int on = 1;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
}

fc_conn *fc_connect(fc_ctx *x, const struct sockaddr *addr, const struct sockaddr *src, int ws, const char *ws_path,
                    void *user)
{
    fc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = x;
    c->user = user;
    c->ws = (uint8_t)(ws != 0);
    c->ws_path = ws_path;
    c->state = ST_CONNECTING;
    if (uv_tcp_init_ex(x->loop, &c->tcp, addr->sa_family) != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->creq.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (src)
        defer_port_choice(&c->tcp);
    int e = src ? uv_tcp_bind(&c->tcp, src, 0) : 0;
    if (e == 0)
        e = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect);
    if (e != 0) {
        c->state = ST_CLOSING;
        c->close_status = e;
        c->ctx = x;
        /* No on_close for a connection that never started: free quietly. */
        c->tcp.data = c;
        uv_close((uv_handle_t *)&c->tcp, free_handle);
        return NULL;
    }
    return c;
}

void *fc_user(const fc_conn *c) { return c->user; }
void fc_set_user(fc_conn *c, void *user) { c->user = user; }
unsigned fc_pending(const fc_conn *c) { return c->pending; }

int fc_quest(fc_conn *c, const char *method, const uint8_t *payload, size_t len, fc_answer_cb cb, void *arg,
             uint64_t cookie)
{
    if (c->state != ST_OPEN)
        return -1;
    fc_ctx *x = c->ctx;
    uint32_t seq = ++x->next_seq;
    if (!seq)
        seq = ++x->next_seq;
    size_t mlen = strlen(method);
    size_t n = fpnn_encoded_size(FPNN_MT_TWOWAY, mlen, len);
    pend p = {seq, c, cb, arg, cookie};
    if (tab_put(x, &p) != 0)
        return -1;
    uint8_t *mask;
    uint8_t *b = unit_begin(c, n, 0x2, &mask);
    if (!b) {
        tab_take(x, seq, c, &p);
        return -1;
    }
    fpnn_encode(b, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, seq, method, mlen, payload, len);
    unit_end(b, n, mask);
    c->pending++;
    mark_dirty(c);
    return 0;
}

fc_ctx *fc_ctx_new(uv_loop_t *loop, const fc_callbacks *cb, size_t max_packet)
{
    fc_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->loop = loop;
    x->cb = *cb;
    x->max_packet = max_packet;
    x->rbuf = malloc(FC_READ_BUF);
    x->rng = 0x9e3779b97f4a7c15ull ^ uv_hrtime();
    if (!x->rbuf || tab_grow(x) != 0) {
        free(x->rbuf);
        free(x->tab);
        free(x);
        return NULL;
    }
    uv_check_init(loop, &x->flusher);
    x->flusher.data = x;
    uv_check_start(&x->flusher, on_check);
    uv_unref((uv_handle_t *)&x->flusher);
    uv_prepare_init(loop, &x->preflusher);
    x->preflusher.data = x;
    uv_prepare_start(&x->preflusher, on_prepare);
    uv_unref((uv_handle_t *)&x->preflusher);
    x->open_handles = 2;
    return x;
}

static void free_ctx_cb(uv_handle_t *h)
{
    fc_ctx *x = h->data;
    if (--x->open_handles > 0)
        return;
    free(x->rbuf);
    free(x->tab);
    free(x);
}

void fc_ctx_free(fc_ctx *x)
{
    if (!x)
        return;
    uv_check_stop(&x->flusher);
    uv_close((uv_handle_t *)&x->flusher, free_ctx_cb);
    uv_prepare_stop(&x->preflusher);
    uv_close((uv_handle_t *)&x->preflusher, free_ctx_cb);
}
