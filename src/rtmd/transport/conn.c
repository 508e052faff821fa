/* Connections of rtmd (see conn.h): accepting within the connection budgets (per gate
 * and per source address), reading and framing (plain FPNN, encrypted FPNN
 * in package or stream mode, WebSocket, HTTP), the `*key` handshake, the
 * tighter bounds of links that have not authenticated (packet size, output,
 * and their input buffers' share of the pre-login budget), the bounded
 * output queue flushed with one write per loop turn, and closing.
 * Everything above framing goes to the server's handlers (net->on_packet,
 * net->on_http) and its lifecycle events: this file names no service. */
#include "conn.h"

#include "events.h"
#include "log.h"
#include "payload.h"

#include <stdlib.h>
#include <string.h>

static void on_closed(uv_handle_t *h);
static int process_input(rtmd_conn *c, uint8_t *data, size_t len, size_t *consumed);
static const char *const gate_names[GATE_COUNT] = {"client_tcp", "client_ws", "server_tcp", "http",
                                                          "file_tcp",   "file_ws"};

const char *rtmd_gate_name(rtmd_gate gate)
{
    return gate < GATE_COUNT ? gate_names[gate] : "?";
}

static void protocol_error(rtmd_conn *c, const char *what);
static void protocol_error_after_flush(rtmd_conn *c, const char *what);

/* What one source address has open on one gate (max_connections_per_address). */
typedef struct rtmd_address_count {
    uint64_t hi, lo; /* the address, its key in address_counts[gate] */
    uint32_t count;
} rtmd_address_count;

static void conn_free(rtmd_conn *c)
{
    rtm_buf_free(&c->in);
    rtm_buf_free(&c->out);
    rtm_buf_free(&c->inflight);
    if (c->tls)
        tls_conn_free(c->tls_state);
    else
        fpnn_crypto_free(c->crypto);
    ws_conn_free(c->ws);
    free(c);
}

void conn_ref(rtmd_conn *c)
{
    c->refs++;
}

void conn_unref(rtmd_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void mark_dirty(rtmd_conn *c)
{
    if (c->dirty || c->closing)
        return;
    c->dirty = true;
    c->dirty_next = conn_net(c)->dirty;
    conn_net(c)->dirty = c;
}

/* ---- links that have not authenticated ---- */

/* The largest packet (or WebSocket message) the link may send now. */
static uint32_t conn_max_packet(const rtmd_conn *c)
{
    const rtmd_config *cfg = conn_net(c)->cfg;
    if (c->gate == GATE_FILE_TCP || c->gate == GATE_FILE_WS)
        return conn_net(c)->file_max_packet; /* an upload; max_file_connections bounds them */
    if (c->authenticated || c->gate == GATE_HTTP || cfg->prelogin_max_packet > cfg->max_packet)
        return cfg->max_packet;
    return cfg->prelogin_max_packet;
}

/* Output bytes the kernel did not take that the link may have queued: a
 * link that has not authenticated gets room for two of its largest
 * answers, not max_output_queue. */
static size_t conn_output_limit(const rtmd_conn *c)
{
    size_t limit = conn_net(c)->cfg->max_output_queue;
    if (!c->authenticated && c->gate != GATE_HTTP && 2 * (size_t)conn_max_packet(c) < limit)
        limit = 2 * (size_t)conn_max_packet(c);
    return limit;
}

/* Brings the link's share of net->prelogin_bytes up to date: its input
 * buffers (unparsed tail, WebSocket message and control frame) while it
 * has not authenticated, nothing once it has or is closing. A link whose
 * share grew while the total is over prelogin_buffer_budget is closed. */
static void account_prelogin(rtmd_conn *c)
{
    rtmd_net *net = conn_net(c);
    size_t held = 0;
    if (!c->authenticated && !c->closing && c->gate != GATE_HTTP && c->gate != GATE_FILE_TCP &&
        c->gate != GATE_FILE_WS)
        held = c->in.cap + (c->ws ? ws_conn_buffered(c->ws) : 0);
    bool grew = held > c->prelogin_held;
    net->prelogin_bytes = net->prelogin_bytes - c->prelogin_held + held;
    c->prelogin_held = (uint32_t)held;
    if (grew && net->prelogin_bytes > net->cfg->prelogin_buffer_budget)
        protocol_error(c, "pre-login input over prelogin_buffer_budget");
}

void conn_authenticated(rtmd_conn *c)
{
    if (c->authenticated)
        return;
    c->authenticated = true;
    if (c->ws)
        ws_set_max_message(c->ws, conn_net(c)->cfg->max_packet);
    account_prelogin(c);
}

/* ---- connection budgets ---- */

/* The budget a new connection on gate would exceed, or NULL. */
static const char *over_gate_budget(const rtmd_net *net, rtmd_gate gate)
{
    const rtmd_config *cfg = net->cfg;
    const uint32_t *open = net->gate_conns;
    switch (gate) {
    case GATE_CLIENT_TCP:
    case GATE_CLIENT_WS:
        if (open[GATE_CLIENT_TCP] + open[GATE_CLIENT_WS] >= cfg->max_connections)
            return "max_connections";
        if (gate == GATE_CLIENT_TCP && cfg->max_client_tcp_connections &&
            open[gate] >= cfg->max_client_tcp_connections)
            return "max_client_tcp_connections";
        if (gate == GATE_CLIENT_WS && cfg->max_client_ws_connections && open[gate] >= cfg->max_client_ws_connections)
            return "max_client_ws_connections";
        return NULL;
    case GATE_SERVER_TCP:
        return open[gate] >= cfg->max_server_connections ? "max_server_connections" : NULL;
    case GATE_FILE_TCP:
    case GATE_FILE_WS:
        return open[GATE_FILE_TCP] + open[GATE_FILE_WS] >= cfg->max_file_connections ? "max_file_connections" : NULL;
    default:
        return open[gate] >= cfg->max_http_connections ? "max_http_connections" : NULL;
    }
}

/* The peer's address as a map key: an IPv4 address (as its IPv4-mapped
 * IPv6 form), or the /64 prefix of an IPv6 address, the block one host
 * usually holds. */
static bool address_key(rtmd_conn *c, uint64_t *hi, uint64_t *lo)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0)
        return false;
    uint8_t a[16] = {0};
    if (ss.ss_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        memcpy(a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 8);
        if (memcmp(a, "\0\0\0\0\0\0\0\0", 8) == 0) /* IPv4-mapped and the like: the whole address */
            memcpy(a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else {
        return false;
    }
    memcpy(hi, a, 8);
    memcpy(lo, a + 8, 8);
    return true;
}

/* Counts c against its source address on its gate; false when the address
 * already has max_connections_per_address there (or memory ran out). */
static bool take_address_place(rtmd_conn *c)
{
    rtmd_net *net = conn_net(c);
    uint32_t limit = net->cfg->max_connections_per_address;
    uint64_t hi, lo;
    if (limit == 0 || !address_key(c, &hi, &lo))
        return limit == 0;
    pairmap *map = &net->address_counts[c->gate];
    rtmd_address_count *a = pairmap_get(map, hi, lo);
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a || pairmap_put(map, hi, lo, a) != 0) {
            free(a);
            return false;
        }
        a->hi = hi;
        a->lo = lo;
    }
    if (a->count >= limit)
        return false;
    a->count++;
    c->address = a;
    return true;
}

static void release_address_place(rtmd_conn *c)
{
    rtmd_address_count *a = c->address;
    if (!a)
        return;
    c->address = NULL;
    if (--a->count == 0) {
        pairmap_del(&conn_net(c)->address_counts[c->gate], a->hi, a->lo);
        free(a);
    }
}

void conn_free_address_counts(rtmd_net *net)
{
    for (int g = 0; g < GATE_COUNT; g++) {
        pairmap *map = &net->address_counts[g];
        for (size_t i = 0; i < map->cap; i++)
            free(map->slots[i].value);
        pairmap_free(map);
    }
}

/* ---- the housekeeping walk (rtmd_sweep in conn.h) ---- */

uint64_t rtmd_sweep_quota(uint64_t left, uint64_t nconns, unsigned ticks_left)
{
    uint64_t n = left < nconns ? left : nconns;
    if (ticks_left <= 1)
        return n;
    return n / ticks_left + (n % ticks_left != 0);
}

/* `left` only ever overstates what the pass has left: it counts down at
 * each visit, while a connection closed before its visit leaves the list
 * without being counted. So the pass's last tick, which takes `left`,
 * reaches the end of the list. */
uint64_t rtmd_sweep_tick(rtmd_sweep *s, rtmd_conn *head, uint64_t nconns, rtmd_sweep_visit *visit, void *arg)
{
    unsigned ticks = s->ticks_per_pass ? s->ticks_per_pass : 1;
    if (s->tick == 0) {
        s->next = head;
        s->left = nconns;
    }
    uint64_t quota = rtmd_sweep_quota(s->left, nconns, ticks - s->tick);
    uint64_t visited = 0;
    while (visited < quota && s->next) {
        rtmd_conn *c = s->next;
        s->next = c->next; /* before the visit, which may close c */
        visited++;
        visit(c, arg);
    }
    s->left = s->next ? s->left - visited : 0;
    if (++s->tick >= ticks) {
        s->tick = 0;
        s->next = NULL;
        s->left = 0;
    }
    return visited;
}

void rtmd_sweep_unlinking(rtmd_sweep *s, const rtmd_conn *c)
{
    if (s->next == c)
        s->next = c->next;
}

/* ---- closing ---- */

/* Tears a closed connection down: unlinks it, fires RTMD_EV_CONN_CLOSED
 * (its session ends, modules drop what they keep for it), and closes its
 * socket (on_closed frees it once the socket and the requests still holding
 * it are done). */
static void teardown(rtmd_conn *c)
{
    rtmd_net *net = conn_net(c);
    rtmd_sweep_unlinking(&net->sweep, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    events_fire(&net->events, c->srv, &(rtmd_event){.kind = RTMD_EV_CONN_CLOSED, .conn = c});
    if (c->source) {
        conn_source *src = c->source;
        c->source = NULL;
        src->done(src, c, false);
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void conn_log_event(rtmd_conn *c, const char *event, const char *const *kv, size_t n)
{
    if (!rtm_log_enabled(RTM_LOG_INFO))
        return;
    char id[24], peer[RTMD_PEER_LEN];
    snprintf(id, sizeof id, "%llu", (unsigned long long)c->id);
    const char *fields[2 * 12] = {"conn", id, "gate", rtmd_gate_name(c->gate), "peer", conn_peer(c, peer)};
    size_t count = 6;
    for (size_t i = 0; i < n && count < sizeof fields / sizeof fields[0]; i++)
        fields[count++] = kv[i];
    rtm_log_event_kv(RTM_LOG_INFO, event, fields, count);
}

/* Closing is deferred, as Redis (freeClientAsync) and Mosquitto
 * (context__add_to_disused) do it: the connection only stops reading and
 * writing here, and conn_finish_closes tears it down at the next check of
 * the loop, before any output is flushed. So a fan-out that drops a slow
 * reader never re-enters sessions, rooms or listeners while it walks them. */
void conn_close(rtmd_conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    rtmd_net *net = conn_net(c);
    conn_log_event(c, "conn_close", (const char *[]){"reason", reason}, 2);
    uv_read_stop((uv_stream_t *)&c->tcp);
    /* Its places in the connection budgets are free at once, so that a
     * link accepted in the same loop turn can have them. */
    net->nconns--;
    net->gate_conns[c->gate]--;
    release_address_place(c);
    account_prelogin(c);
    if (net->nclosing == net->closing_cap) {
        size_t cap = net->closing_cap ? 2 * net->closing_cap : 64;
        rtmd_conn **p = realloc(net->closing, cap * sizeof *p);
        if (!p) {
            teardown(c); /* out of memory: at once, as a last resort */
            return;
        }
        net->closing = p;
        net->closing_cap = cap;
    }
    net->closing[net->nclosing++] = c;
}

void conn_finish_closes(rtmd_net *net)
{
    /* A teardown may close more connections (a logout pushes to others):
     * they join the end of the list and are torn down in this pass. */
    for (size_t i = 0; i < net->nclosing; i++)
        teardown(net->closing[i]);
    net->nclosing = 0;
}

void conn_close_after_flush(rtmd_conn *c)
{
    c->close_after_flush = true;
    if (!c->writing && rtm_buf_pending(&c->out) == 0)
        conn_close(c, "finished");
    else
        mark_dirty(c);
}

static void on_closed(uv_handle_t *h)
{
    rtmd_conn *c = (rtmd_conn *)h;
    conn_net(c)->metrics.closed[c->gate]++;
    conn_net(c)->metrics.current[c->gate]--;
    conn_unref(c);
}

static void start_write(rtmd_conn *c);

/* The limit applies to bytes the kernel would not take: past it, output is
 * first written out at once, and only a reader that still lags is dropped. */
static bool over_output_limit(rtmd_conn *c)
{
    size_t limit = conn_output_limit(c);
    size_t queued = rtm_buf_pending(&c->out) + rtm_buf_pending(&c->inflight);
    if (queued <= limit)
        return false;
    if (!c->writing) {
        start_write(c);
        if (c->closing)
            return true;
        queued = rtm_buf_pending(&c->out) + rtm_buf_pending(&c->inflight);
        if (queued <= limit)
            return false;
    }
    conn_net(c)->metrics.slow_consumers++;
    char peer[RTMD_PEER_LEN];
    LOG_WARN("conn %llu %s: output queue over %zu bytes, dropping a slow reader", (unsigned long long)c->id,
             conn_peer(c, peer), limit);
    conn_close(c, "slow consumer");
    return true;
}

int conn_send_raw(rtmd_conn *c, const void *data, size_t len)
{
    if (c->closing)
        return -1;
    int rc = c->tls ? tls_conn_seal(c->tls_state, data, len, &c->out) : rtm_buf_append(&c->out, data, len);
    if (rc != 0) {
        conn_close(c, c->tls ? "TLS encryption failed" : "out of memory");
        return -1;
    }
    if (over_output_limit(c))
        return -1;
    mark_dirty(c);
    return 0;
}

int conn_send_packet(rtmd_conn *c, const uint8_t *packet, size_t len)
{
    if (c->closing)
        return -1;
    conn_net(c)->metrics.packets_out++;
    switch (c->framing) {
    case FRAMING_WS:
        if (ws_send_binary(c->ws, packet, len) != 0) {
            conn_close(c, "websocket send failed");
            return -1;
        }
        return c->closing ? -1 : 0;
    case FRAMING_FPNN_PACKAGE:
    case FRAMING_FPNN_STREAM:
        if (fpnn_crypto_encrypt(c->crypto, packet, len, &c->out) != 0) {
            conn_close(c, "encryption failed");
            return -1;
        }
        if (over_output_limit(c))
            return -1;
        mark_dirty(c);
        return 0;
    default:
        return conn_send_raw(c, packet, len);
    }
}

int conn_send_quest(rtmd_conn *c, const char *method, const uint8_t *payload, size_t len)
{
    rtm_buf *b = &conn_net(c)->scratch;
    size_t mlen = strlen(method);
    size_t size = fpnn_encoded_size(FPNN_MT_TWOWAY, mlen, len);
    rtm_buf_reset(b);
    if (rtm_buf_reserve(b, size) != 0)
        return -1;
    uint32_t seq = ++c->next_seq;
    b->len = fpnn_encode(b->data, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, seq, method, mlen, payload, len);
    return conn_send_packet(c, b->data, b->len);
}

int conn_send_push(rtmd_conn *c, const uint8_t *packet, size_t len)
{
    if (c->closing)
        return -1;
    if (packet[6] != FPNN_MT_TWOWAY)
        return conn_send_packet(c, packet, len);
    uint32_t seq = ++c->next_seq;
    if (c->framing == FRAMING_FPNN) {
        /* Plain links: copy once into the output and patch it there. */
        conn_net(c)->metrics.packets_out++;
        if (rtm_buf_append(&c->out, packet, len) != 0) {
            conn_close(c, "out of memory");
            return -1;
        }
        fpnn_patch_seq(c->out.data + c->out.len - len, seq);
        if (over_output_limit(c))
            return -1;
        mark_dirty(c);
        return 0;
    }
    rtm_buf *b = &conn_net(c)->push_scratch;
    rtm_buf_reset(b);
    if (rtm_buf_append(b, packet, len) != 0)
        return -1;
    fpnn_patch_seq(b->data, seq);
    return conn_send_packet(c, b->data, b->len);
}

/* ---- output flushing: one write per connection per loop turn ---- */

static void start_write(rtmd_conn *c);

/* Frees the output buffers that hold nothing and have at most max_cap
 * bytes, unless a write is in flight. Two callers:
 *  - once everything queued is written, buffers of the first size go at
 *    once (drop_small_output_buffers): most connections of a chat server go
 *    quiet after a few small answers and pushes, and a buffer freed a second
 *    later leaves a hole in the heap between live connections that stays
 *    resident (6,000 idle WebSocket sessions: 805 bytes of RSS each instead
 *    of 1,305);
 *  - larger ones, of busy connections, go when the connection has been quiet
 *    for a second (conn_release_idle_buffers, from the housekeeping tick). */
static void release_output_buffers(rtmd_conn *c, size_t max_cap)
{
    if (c->writing || c->closing)
        return;
    if (rtm_buf_pending(&c->out) == 0 && c->out.cap <= max_cap)
        rtm_buf_free(&c->out);
    if (rtm_buf_pending(&c->inflight) == 0 && c->inflight.cap <= max_cap)
        rtm_buf_free(&c->inflight);
}

static void drop_small_output_buffers(rtmd_conn *c)
{
    release_output_buffers(c, RTM_BUF_MIN_CAP);
}

/* Queues the next part of the connection's source once its output has
 * drained; returns true when it queued some. The last part ends the
 * source (done, finished). */
static bool pull_source(rtmd_conn *c)
{
    conn_source *src = c->source;
    if (!src || c->closing || rtm_buf_pending(&c->out) > 0)
        return false;
    long n = src->fill(src, src->buf, sizeof src->buf);
    if (n < 0) {
        conn_close(c, "body source failed");
        return false;
    }
    if (n > 0)
        return conn_send_raw(c, src->buf, (size_t)n) == 0;
    c->source = NULL;
    src->done(src, c, true);
    return rtm_buf_pending(&c->out) > 0;
}

int conn_send_source(rtmd_conn *c, conn_source *src)
{
    if (c->closing || c->source)
        return -1;
    c->source = src;
    pull_source(c);
    return 0;
}

static void on_written(uv_write_t *req, int status)
{
    rtmd_conn *c = req->data;
    free(req);
    c->writing = false;
    rtm_buf_reset(&c->inflight);
    if (status < 0) {
        if (!c->closing)
            conn_close(c, uv_strerror(status));
    } else if (!c->closing) {
        if (rtm_buf_pending(&c->out) > 0 || pull_source(c))
            start_write(c);
        else if (c->close_after_flush)
            conn_close(c, "finished");
        else
            drop_small_output_buffers(c);
    }
    conn_unref(c);
}

/* Writes what the kernel takes now, and hands the rest to uv_write. */
static void start_write(rtmd_conn *c)
{
    rtm_buf tmp = c->inflight;
    c->inflight = c->out;
    c->out = tmp;
    rtm_buf_reset(&c->out);
    uv_buf_t buf = uv_buf_init((char *)rtm_buf_head(&c->inflight), (unsigned)rtm_buf_pending(&c->inflight));
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c, uv_strerror(n));
        return;
    }
    if (n > 0) {
        conn_net(c)->metrics.bytes_out += (uint64_t)n;
        rtm_buf_consume(&c->inflight, (size_t)n);
        if (rtm_buf_pending(&c->inflight) == 0) {
            if (pull_source(c))
                return; /* queued and marked dirty: written at the end of this turn */
            if (c->close_after_flush)
                conn_close(c, "finished");
            else
                drop_small_output_buffers(c);
            return;
        }
        buf = uv_buf_init((char *)rtm_buf_head(&c->inflight), (unsigned)rtm_buf_pending(&c->inflight));
    }
    /* The kernel did not take everything: the rest goes out through a write
     * request, allocated only for as long as such a write is in flight. */
    uv_write_t *req = malloc(sizeof *req);
    if (!req) {
        conn_close(c, "out of memory");
        return;
    }
    conn_net(c)->metrics.bytes_out += buf.len;
    req->data = c;
    int rc = uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(req);
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->writing = true;
    conn_ref(c);
}

size_t conn_buffer_bytes(const rtmd_conn *c)
{
    return c->in.cap + c->out.cap + c->inflight.cap + (c->ws ? ws_conn_buffered(c->ws) : 0);
}

size_t conn_undelivered_bytes(rtmd_conn *c)
{
    size_t n = rtm_buf_pending(&c->out);
    if (c->writing)
        n += uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    return n;
}

void conn_release_idle_buffers(rtmd_conn *c)
{
    release_output_buffers(c, SIZE_MAX);
}

static void resume_http_input(rtmd_conn *c);

size_t rtmd_flush_dirty(rtmd_net *net)
{
    size_t written = 0;
    while (net->dirty) {
        rtmd_conn *c = net->dirty;
        net->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->closing)
            continue;
        resume_http_input(c);
        if (c->closing || c->writing)
            continue;
        if (rtm_buf_pending(&c->out) > 0) {
            start_write(c);
            written++;
        } else if (c->close_after_flush) {
            conn_close(c, "finished");
        }
    }
    return written;
}

void conn_http_answered(rtmd_conn *c)
{
    c->http_answer_later = false;
    if (rtm_buf_pending(&c->in) > 0)
        mark_dirty(c); /* requests wait behind the answer: see process_http */
}

/* ---- input ---- */

static void log_protocol_error(rtmd_conn *c, const char *what)
{
    conn_net(c)->metrics.protocol_errors++;
    char peer[RTMD_PEER_LEN];
    LOG_INFO("conn %llu %s %s: %s, closing", (unsigned long long)c->id, rtmd_gate_name(c->gate), conn_peer(c, peer),
             what);
}

static void protocol_error(rtmd_conn *c, const char *what)
{
    if (c->closing)
        return;
    log_protocol_error(c, what);
    conn_close(c, what);
}

/* As protocol_error, but what is queued (a TLS alert) goes out first and
 * nothing more is read. */
static void protocol_error_after_flush(rtmd_conn *c, const char *what)
{
    if (c->closing)
        return;
    log_protocol_error(c, what);
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_close_after_flush(c);
}

/* The `*key` quest that opens an encrypted link: answered (if twoway)
 * already encrypted, and every later byte in both directions is encrypted. */
static int handle_key_exchange(rtmd_conn *c, const fpnn_packet *pkt)
{
    rtmd_net *net = conn_net(c);
    if (!net->key || c->framing != FRAMING_FPNN || c->handshaken ||
        (c->gate != GATE_CLIENT_TCP && c->gate != GATE_SERVER_TCP && c->gate != GATE_FILE_TCP)) {
        protocol_error(c, net->key ? "*key not allowed here" : "*key but encryption is not configured");
        return -1;
    }
    msgpack_unpacked args;
    if (rtm_payload_decode(pkt->flag, pkt->payload, pkt->payload_len, &args) != 0) {
        protocol_error(c, "bad *key payload");
        return -1;
    }
    const char *pub = NULL;
    size_t publen = 0;
    bool stream = false;
    int64_t bits = 128;
    mp_get_str(&args.data, "publicKey", &pub, &publen);
    mp_get_bool(&args.data, "streamMode", &stream);
    mp_get_int64(&args.data, "bits", &bits);
    fpnn_crypto *crypto = NULL;
    if (pub && (bits == 128 || bits == 256))
        crypto = fpnn_crypto_new(net->key, (const uint8_t *)pub, publen, (int)bits, stream);
    msgpack_unpacked_destroy(&args);
    if (!crypto) {
        protocol_error(c, "bad *key public key or bits");
        return -1;
    }
    c->crypto = crypto;
    c->framing = stream ? FRAMING_FPNN_STREAM : FRAMING_FPNN_PACKAGE;
    c->handshaken = true;
    if (pkt->mtype == FPNN_MT_TWOWAY) {
        /* An empty map: 0x80 in msgpack, "{}" in JSON. */
        bool json = pkt->flag == FPNN_FLAG_JSON;
        const uint8_t *body = json ? (const uint8_t *)"{}" : (const uint8_t *)"\x80";
        uint8_t answer[FPNN_TWOWAY_HEADER + 2];
        size_t n = fpnn_encode(answer, pkt->flag, FPNN_MT_ANSWER, 0, pkt->seq, NULL, 0, body, json ? 2 : 1);
        conn_send_packet(c, answer, n);
    }
    return 0;
}

static int handle_packet(rtmd_conn *c, const fpnn_packet *pkt)
{
    conn_net(c)->metrics.packets_in++;
    if (pkt->mtype != FPNN_MT_ANSWER && pkt->method_len == 4 && memcmp(pkt->method, "*key", 4) == 0)
        return handle_key_exchange(c, pkt);
    c->handshaken = true;
    return conn_net(c)->on_packet(c, pkt);
}

/* An upload over the file gate's packet limit on plain FPNN over TCP
 * (server SDKs): once its header and method are in, it is dispatched
 * without its payload (on_oversized: the upload method answers 200031)
 * and the rest of it is skipped as it arrives (c->discard), so the SDK
 * reads an answer instead of a link closed under a half-sent file.
 * Returns the bytes taken (the whole buffer), FPNN_PARSE_MORE to wait for
 * the method, or FPNN_PARSE_TOO_LARGE when it cannot be answered so. */
static long skip_oversized_upload(rtmd_conn *c, const uint8_t *data, size_t len)
{
    if (c->gate != GATE_FILE_TCP || c->framing != FRAMING_FPNN)
        return FPNN_PARSE_TOO_LARGE;
    fpnn_packet pkt;
    uint64_t total = 0;
    long head = fpnn_parse_head(data, len, &pkt, &total);
    if (head == FPNN_PARSE_MORE)
        return FPNN_PARSE_MORE;
    if (head < 0 || pkt.mtype != FPNN_MT_TWOWAY || total > UINT32_MAX)
        return FPNN_PARSE_TOO_LARGE;
    static const uint8_t empty_map[] = {0x80}, empty_object[] = "{}";
    pkt.payload = pkt.flag == FPNN_FLAG_JSON ? empty_object : empty_map; /* the handler sees no fields */
    pkt.payload_len = pkt.flag == FPNN_FLAG_JSON ? 2 : 1;
    c->handshaken = true;
    if (conn_net(c)->on_oversized(c, &pkt, total) != 0)
        return FPNN_PARSE_TOO_LARGE;
    size_t taken = len < total ? len : (size_t)total;
    c->discard = (uint32_t)(total - taken);
    return (long)taken;
}

/* Parses plain or stream-decrypted FPNN packets in data[0..len). */
static int process_fpnn(rtmd_conn *c, uint8_t *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    while (pos < len && !c->closing) {
        if (c->discard > 0) { /* the rest of an oversized upload (skip_oversized_upload) */
            size_t n = len - pos < c->discard ? len - pos : c->discard;
            pos += n;
            c->discard -= (uint32_t)n;
            continue;
        }
        uint32_t max_packet = conn_max_packet(c); /* grows once the link authenticated */
        if (c->framing == FRAMING_FPNN_PACKAGE) {
            if (len - pos < 4)
                break;
            uint32_t plen = (uint32_t)data[pos] | (uint32_t)data[pos + 1] << 8 | (uint32_t)data[pos + 2] << 16 |
                            (uint32_t)data[pos + 3] << 24;
            if (plen < FPNN_ONEWAY_HEADER || plen > max_packet) {
                protocol_error(c, plen > max_packet ? "packet over the size limit" : "bad encrypted package");
                return -1;
            }
            if (len - pos - 4 < plen)
                break;
            rtm_buf *plain = &conn_net(c)->decrypted;
            rtm_buf_reset(plain);
            if (rtm_buf_reserve(plain, plen) != 0) {
                conn_close(c, "out of memory");
                return -1;
            }
            if (fpnn_crypto_decrypt_package(c->crypto, data + pos + 4, plen, plain->data) != 0) {
                protocol_error(c, "decryption failed");
                return -1;
            }
            fpnn_packet pkt;
            long r = fpnn_parse(plain->data, plen, max_packet, &pkt);
            if (r != (long)plen) {
                protocol_error(c, "bad packet in encrypted package");
                return -1;
            }
            pos += 4 + plen;
            if (handle_packet(c, &pkt) != 0) {
                protocol_error(c, "malformed packet");
                return -1;
            }
            continue;
        }
        fpnn_packet pkt;
        long r = fpnn_parse(data + pos, len - pos, max_packet, &pkt);
        if (r == FPNN_PARSE_TOO_LARGE) {
            r = skip_oversized_upload(c, data + pos, len - pos);
            if (r > 0) {
                pos += (size_t)r;
                continue;
            }
        }
        if (r == FPNN_PARSE_MORE)
            break;
        if (r < 0) {
            protocol_error(c, r == FPNN_PARSE_TOO_LARGE ? "packet over the size limit" : "not an FPNN packet");
            return -1;
        }
        conn_framing before = c->framing;
        pos += (size_t)r;
        if (handle_packet(c, &pkt) != 0) {
            protocol_error(c, "malformed packet");
            return -1;
        }
        /* Bytes that followed `*key` in the same read are ciphertext. */
        if (before == FRAMING_FPNN && c->framing == FRAMING_FPNN_STREAM && pos < len)
            fpnn_crypto_decrypt_stream(c->crypto, data + pos, len - pos);
    }
    *consumed = pos;
    return 0;
}

static void on_ws_message(void *ud, const uint8_t *data, size_t len, bool binary)
{
    rtmd_conn *c = ud;
    if (c->closing)
        return;
    if (!binary) {
        protocol_error(c, "text WebSocket message");
        return;
    }
    fpnn_packet pkt;
    long r = fpnn_parse(data, len, conn_max_packet(c), &pkt);
    if (r != (long)len) {
        protocol_error(c, r == FPNN_PARSE_TOO_LARGE ? "packet over the size limit"
                                                    : "WebSocket message is not one FPNN packet");
        return;
    }
    if (handle_packet(c, &pkt) != 0)
        protocol_error(c, "malformed packet");
}

static int on_ws_send(void *ud, const uint8_t *data, size_t len)
{
    rtmd_conn *c = ud;
    return conn_send_raw(c, data, len);
}

static const ws_callbacks ws_cb = {on_ws_message, on_ws_send};

static void send_http_error(rtmd_conn *c, int status)
{
    const char *text = status == 404 ? "404 Not Found" : status == 426 ? "426 Upgrade Required"
                       : status == 413 ? "413 Payload Too Large" : "400 Bad Request";
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close%s\r\n\r\n", text,
                     status == 426 ? "\r\nSec-WebSocket-Version: 13" : "");
    conn_send_raw(c, resp, (size_t)n);
    conn_close_after_flush(c);
}

static int process_ws_handshake(rtmd_conn *c, uint8_t *data, size_t len, size_t *consumed)
{
    http_request req;
    long r = http_request_parse((const char *)data, len, 0, &req);
    if (r == HTTP_PARSE_MORE) {
        *consumed = 0;
        return 0;
    }
    if (r < 0) {
        conn_net(c)->metrics.protocol_errors++;
        send_http_error(c, r == HTTP_PARSE_TOO_LARGE ? 413 : 400);
        return -1;
    }
    char resp[512];
    int status = 400;
    int n = ws_handshake_response(&req, conn_net(c)->cfg->ws_path, resp, sizeof resp, &status);
    if (n < 0) {
        conn_net(c)->metrics.protocol_errors++;
        send_http_error(c, status);
        return -1;
    }
    c->ws = ws_conn_new(&ws_cb, c, conn_max_packet(c));
    if (!c->ws) {
        conn_close(c, "out of memory");
        return -1;
    }
    conn_send_raw(c, resp, (size_t)n);
    c->framing = FRAMING_WS;
    c->handshaken = true;
    *consumed = (size_t)r;
    return 0;
}

static int process_http(rtmd_conn *c, uint8_t *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    /* Requests are answered in order: while one's answer is deferred
     * (http_defer), the ones behind it wait in c->in; conn_http_answered
     * lets rtmd_flush_dirty go on with them. */
    while (pos < len && !c->closing && !c->close_after_flush && !c->http_answer_later) {
        http_request req;
        long r = http_request_parse((const char *)data + pos, len - pos, 65536, &req);
        if (r == HTTP_PARSE_MORE)
            break;
        if (r < 0) {
            send_http_error(c, r == HTTP_PARSE_TOO_LARGE ? 413 : 400);
            return -1;
        }
        pos += (size_t)r;
        c->handshaken = true;
        conn_net(c)->metrics.packets_in++;
        conn_net(c)->on_http(c, &req);
        if (!req.keep_alive && !c->http_answer_later)
            conn_close_after_flush(c);
    }
    *consumed = pos;
    return 0;
}

/* Feeds received bytes to the framing of the connection; *consumed tells
 * how many were used (the rest waits for more). */
static int process_input(rtmd_conn *c, uint8_t *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    for (;;) {
        conn_framing framing = c->framing;
        size_t used = 0;
        int rc;
        switch (framing) {
        case FRAMING_WS_HANDSHAKE:
            rc = process_ws_handshake(c, data, len, &used);
            break;
        case FRAMING_WS:
            rc = ws_feed(c->ws, data, len);
            if (rc != 0 && !c->closing)
                conn_close_after_flush(c);
            used = len;
            break;
        case FRAMING_HTTP:
            rc = process_http(c, data, len, &used);
            break;
        default:
            rc = process_fpnn(c, data, len, &used);
            break;
        }
        *consumed += used;
        data += used;
        len -= used;
        /* The WebSocket upgrade may be followed by frames in the same read. */
        if (rc != 0 || c->closing || len == 0 || c->framing == framing)
            return rc;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rtmd_conn *c = (rtmd_conn *)h;
    buf->base = (char *)conn_net(c)->readbuf;
    buf->len = sizeof conn_net(c)->readbuf;
}

/* Parses the HTTP requests that waited in c->in behind a deferred answer
 * (from rtmd_flush_dirty, outside any parsing of this connection). */
static void resume_http_input(rtmd_conn *c)
{
    if (c->framing != FRAMING_HTTP || c->http_answer_later || c->close_after_flush || rtm_buf_pending(&c->in) == 0)
        return;
    conn_ref(c);
    size_t consumed = 0;
    if (process_input(c, rtm_buf_head(&c->in), rtm_buf_pending(&c->in), &consumed) == 0)
        rtm_buf_consume(&c->in, consumed);
    if (!c->closing && rtm_buf_pending(&c->in) == 0 && c->in.cap > 0)
        rtm_buf_free(&c->in);
    conn_unref(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    rtmd_conn *c = (rtmd_conn *)stream;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    if (c->closing)
        return;
    rtmd_net *net = conn_net(c);
    net->metrics.bytes_in += (uint64_t)nread;
    c->last_recv_ms = uv_now(net->loop);
    uint8_t *data = (uint8_t *)buf->base;
    size_t len = (size_t)nread;
    if (c->tls) {
        /* TLS links go on with the plaintext (and send what the handshake
         * answers); the TLS records themselves are OpenSSL's to buffer. */
        rtm_buf *plain = &net->tls_plain;
        rtm_buf_reset(plain);
        size_t queued = rtm_buf_pending(&c->out);
        int rc = tls_conn_feed(c->tls_state, data, len, plain, &c->out);
        if (rtm_buf_pending(&c->out) != queued)
            mark_dirty(c);
        if (rc != 0) {
            protocol_error_after_flush(c, "TLS handshake or record failed");
            return;
        }
        data = plain->data;
        len = plain->len;
        if (len == 0)
            return;
    } else if (c->framing == FRAMING_FPNN_STREAM) {
        fpnn_crypto_decrypt_stream(c->crypto, data, len);
    }

    conn_ref(c);
    size_t consumed = 0;
    if (rtm_buf_pending(&c->in) == 0) {
        /* Common case: parse straight from the loop's read buffer and keep
         * only an incomplete tail, so idle connections hold no buffer. */
        if (process_input(c, data, len, &consumed) == 0 && !c->closing && consumed < len &&
            rtm_buf_append(&c->in, data + consumed, len - consumed) != 0)
            conn_close(c, "out of memory");
    } else if (rtm_buf_append(&c->in, data, len) != 0) {
        conn_close(c, "out of memory");
    } else if (process_input(c, rtm_buf_head(&c->in), rtm_buf_pending(&c->in), &consumed) == 0) {
        rtm_buf_consume(&c->in, consumed);
    }
    if (!c->closing) {
        if (rtm_buf_pending(&c->in) == 0 && c->in.cap > 0)
            rtm_buf_free(&c->in);
        /* The unparsed tail is bounded by the largest packet the link may
         * send now, the upgrade by the HTTP head limit, an HTTP request by
         * its head and body limits. */
        size_t bound = (size_t)conn_max_packet(c) + 4;
        if (c->framing == FRAMING_WS_HANDSHAKE)
            bound = HTTP_MAX_HEAD;
        else if (c->framing == FRAMING_HTTP)
            bound = HTTP_MAX_HEAD + 65536;
        if (rtm_buf_pending(&c->in) > bound)
            protocol_error(c, "unparsed input over the limit");
        else
            account_prelogin(c);
    }
    conn_unref(c);
}

const char *conn_peer(rtmd_conn *c, char buf[RTMD_PEER_LEN])
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    snprintf(buf, RTMD_PEER_LEN, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0)
        return buf;
    char ip[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(buf, RTMD_PEER_LEN, "%s:%d", ip, port);
    return buf;
}

void rtmd_on_connection(uv_stream_t *server_stream, int status)
{
    rtmd_listener *l = (rtmd_listener *)server_stream;
    rtmd_net *net = (rtmd_net *)(void *)l->srv;
    if (status < 0) {
        LOG_WARN("accept on %s failed: %s", rtmd_gate_name(l->gate), uv_strerror(status));
        return;
    }
    rtmd_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = l->srv;
    c->gate = l->gate;
    c->refs = 1;
    c->id = ++net->next_conn_id;
    c->created_ms = c->last_recv_ms = c->last_ping_ms = uv_now(net->loop);
    c->framing = GATE_IS_WS(l->gate) ? FRAMING_WS_HANDSHAKE : l->gate == GATE_HTTP ? FRAMING_HTTP : FRAMING_FPNN;
    if (l->tls) {
        c->tls = true;
        c->tls_state = tls_conn_new(net->tls);
        if (!c->tls_state) {
            free(c);
            return;
        }
    }
    uv_tcp_init(net->loop, &c->tcp);
    net->metrics.current[c->gate]++;
    if (uv_accept(server_stream, (uv_stream_t *)&c->tcp) != 0) {
        net->metrics.accepted[c->gate]++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    net->metrics.accepted[c->gate]++;
    const char *refused = net->refusing ? "stopping" : over_gate_budget(net, c->gate);
    if (!refused && !take_address_place(c))
        refused = "max_connections_per_address";
    if (refused) {
        net->metrics.refused[c->gate]++;
        char peer[RTMD_PEER_LEN];
        LOG_DEBUG("conn %s %s refused: %s", rtmd_gate_name(c->gate), conn_peer(c, peer), refused);
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    net->gate_conns[c->gate]++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->gate == GATE_SERVER_TCP)
        uv_tcp_keepalive(&c->tcp, 1, 60);
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    net->nconns++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_log_event(c, "conn_open", NULL, 0);
}
