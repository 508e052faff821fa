/* target_rtmd.c — the rtmd target of rtm-bench (interface in bench.h):
 * tokens minted through the server gate before the run (signed gettoken,
 * pipelined over a few gate links), client links over FPNN TCP or WebSocket
 * (fpnn_client.c) logged in with `auth`, topics as rooms (enterroom,
 * sendroommsg), p2p as sendmsg quest/answer, and deliveries from the
 * pushroommsg / pushmsg quests the server sends. Client i is uid
 * uid_base + i; topic t is rid rid_base + t. With --nodes, client i talks
 * to node bench_node_of(i) and gate link k mints on node k % nodes (tokens
 * live in the shared store, so any node's token logs in on every node). */
#include "bench.h"
#include "fpnn_client.h"
#include "payload.h"

#include <msgpack.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GATE_LINKS 4 /* with --nodes: at least one per node */
#define GATE_WINDOW 128
#define TOKEN_LEN 32
#define BENCH_MTYPE 51

enum { C_IDLE, C_CONNECTING, C_AUTHING, C_READY, C_CLOSING };

typedef struct rclient {
    fc_conn *conn;
    uint8_t state;
    int await_peer; /* --nodes p2p: 1 + the peer to ask about again, 0 none */
} rclient;

static struct {
    uv_loop_t *loop;
    const bench_opts *o;
    int n;
    rclient *cl;
    char (*tokens)[TOKEN_LEN + 1];
    fc_ctx *fc;
    struct sockaddr_in *addr, *gate_addr; /* per node (one without --nodes) */
    int naddr;
    msgpack_sbuffer sb;
    uint64_t mid;
    /* token minting */
    fc_conn *gate[BENCH_MAX_NODES > GATE_LINKS ? BENCH_MAX_NODES : GATE_LINKS];
    int ngates;
    int gates_open;
    int next_mint, minted, mint_failed;
    int64_t salt;
    int preparing;
    uv_timer_t online_timer; /* asks again about peers not yet online */
} R;

/* Client index <-> fc user pointer: clients are i + 1, gate links -(k + 1). */
static void *cl_tag(int i) { return (void *)(intptr_t)(i + 1); }
static int tag_client(fc_conn *c) { return (int)((intptr_t)fc_user(c) - 1); }

/* ---- server gate: signed gettoken ---- */

static void sign_request(msgpack_packer *pk, const char *method)
{
    int64_t ts = (int64_t)time(NULL);
    int64_t salt = ++R.salt;
    char text[512];
    int n = snprintf(text, sizeof text, "%lld:%s:%lld:%s:%lld", (long long)R.o->pid, R.o->secret, (long long)salt,
                     method, (long long)ts);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    char sign[33];
    static const char hex[] = "0123456789ABCDEF";
    EVP_Digest(text, (size_t)n, d, &dl, EVP_md5(), NULL);
    for (unsigned i = 0; i < 16; i++) {
        sign[2 * i] = hex[d[i] >> 4];
        sign[2 * i + 1] = hex[d[i] & 15];
    }
    sign[32] = 0;
    mp_pack_kv_int(pk, "pid", R.o->pid);
    mp_pack_kv_int(pk, "salt", salt);
    mp_pack_kv_int(pk, "ts", ts);
    mp_pack_kv_str(pk, "sign", sign);
}

static void mint_next(fc_conn *g);

static void mint_done(void)
{
    if (!R.preparing)
        return;
    R.preparing = 0;
    for (int k = 0; k < R.ngates; k++)
        if (R.gate[k])
            fc_close(R.gate[k]);
    bench_prepared(R.mint_failed ? -1 : 0);
}

static void on_token(fc_conn *g, const fpnn_packet *ans, int status, void *arg, uint64_t uid_index)
{
    int i = (int)uid_index;
    int ok = 0;
    if (status == 0 && ans->status == 0) {
        msgpack_unpacked u;
        if (rtm_payload_decode(ans->flag, ans->payload, ans->payload_len, &u) == 0) {
            const char *t;
            size_t tl;
            if (mp_get_str(&u.data, "token", &t, &tl) && tl <= TOKEN_LEN) {
                memcpy(R.tokens[i], t, tl);
                R.tokens[i][tl] = 0;
                ok = 1;
            }
            msgpack_unpacked_destroy(&u);
        }
    }
    if (!ok) {
        if (!R.mint_failed)
            bench_error(i, status ? status : ans->status, "gettoken failed");
        R.mint_failed++;
    }
    R.minted++;
    if (R.minted == R.n) {
        mint_done();
        return;
    }
    if (status == 0 && fc_is_open(g))
        mint_next(g);
}

static void mint_next(fc_conn *g)
{
    if (R.next_mint >= R.n)
        return;
    int i = R.next_mint++;
    msgpack_sbuffer_clear(&R.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &R.sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    sign_request(&pk, "gettoken");
    mp_pack_kv_int(&pk, "uid", R.o->uid_base + i);
    if (fc_quest(g, "gettoken", (const uint8_t *)R.sb.data, R.sb.size, on_token, NULL, (uint64_t)i) != 0) {
        R.mint_failed++;
        R.minted++;
        if (R.minted == R.n)
            mint_done();
    }
}

/* ---- client links ---- */

static void on_auth(fc_conn *c, const fpnn_packet *ans, int status, void *arg, uint64_t cookie)
{
    int i = tag_client(c);
    if (status != 0)
        return; /* closed: on_close reports */
    int ok = 0, code = ans->status;
    msgpack_unpacked u;
    if (rtm_payload_decode(ans->flag, ans->payload, ans->payload_len, &u) == 0) {
        bool b = false;
        int64_t ec;
        if (ans->status == 0 && mp_get_bool(&u.data, "ok", &b) && b)
            ok = 1;
        else if (mp_get_int64(&u.data, "code", &ec))
            code = (int)ec;
        else if (!code)
            code = 200027; /* ok:false, invalid token */
        msgpack_unpacked_destroy(&u);
    }
    if (!ok) {
        R.cl[i].state = C_CLOSING;
        fc_close(c);
        bench_connected(i, code ? code : -1);
        return;
    }
    R.cl[i].state = C_READY;
    bench_connected(i, 0);
}

static void on_open(fc_conn *c, int status)
{
    intptr_t tag = (intptr_t)fc_user(c);
    if (status != 0)
        return; /* on_close follows */
    if (tag < 0) {
        R.gates_open++;
        for (int w = 0; w < GATE_WINDOW; w++)
            mint_next(c);
        return;
    }
    int i = (int)tag - 1;
    R.cl[i].state = C_AUTHING;
    msgpack_sbuffer_clear(&R.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &R.sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_int(&pk, "pid", R.o->pid);
    mp_pack_kv_int(&pk, "uid", R.o->uid_base + i);
    mp_pack_kv_str(&pk, "token", R.tokens[i]);
    mp_pack_kv_str(&pk, "version", "rtm-bench");
    if (fc_quest(c, "auth", (const uint8_t *)R.sb.data, R.sb.size, on_auth, NULL, 0) != 0)
        fc_close(c);
}

static void on_close(fc_conn *c, int status)
{
    intptr_t tag = (intptr_t)fc_user(c);
    if (tag < 0) {
        int k = (int)(-tag - 1);
        R.gate[k] = NULL;
        if (R.preparing) {
            /* A gate link died while minting: what it had in flight failed
             * (counted in on_token); carry on over the other links or stop. */
            int alive = 0;
            for (int j = 0; j < R.ngates; j++)
                alive += R.gate[j] != NULL;
            if (!alive) {
                bench_error(-1, status, "server gate link closed");
                R.mint_failed += R.n - R.minted;
                mint_done();
            }
        }
        return;
    }
    int i = (int)tag - 1;
    uint8_t st = R.cl[i].state;
    R.cl[i].conn = NULL;
    R.cl[i].state = C_IDLE;
    if (st == C_CONNECTING || st == C_AUTHING)
        bench_connected(i, status ? status : FPNN_EC_CORE_CONNECTION_CLOSED);
    else if (st != C_IDLE)
        bench_closed(i, st == C_CLOSING ? 0 : (status ? status : FPNN_EC_CORE_CONNECTION_CLOSED));
}

/* Finds the bin/str `msg` of a push without keeping anything. */
static void on_quest(fc_conn *c, const fpnn_packet *q)
{
    intptr_t tag = (intptr_t)fc_user(c);
    if (tag <= 0 || !q->method_len)
        return;
    int is_room = q->method_len == 11 && memcmp(q->method, "pushroommsg", 11) == 0;
    int is_p2p = q->method_len == 7 && memcmp(q->method, "pushmsg", 7) == 0;
    if (!is_room && !is_p2p)
        return; /* ping, kickout, ... */
    int i = (int)tag - 1;
    if (q->flag != FPNN_FLAG_MSGPACK) {
        bench_error(i, FPNN_EC_CORE_DECODING, "push is not msgpack");
        return;
    }
    /* Only `msg` is needed: found in place, as the peers' clients hand over
     * their payload bytes without decoding anything. */
    const uint8_t *v, *body;
    size_t vlen, blen;
    if (rtm_msgpack_map_find(q->payload, q->payload_len, "msg", &v, &vlen) != 0 ||
        rtm_msgpack_bytes(v, vlen, &body, &blen) != 0) {
        bench_error(i, FPNN_EC_CORE_DECODING, "push without msg");
        return;
    }
    bench_delivered(i, body, blen);
}

/* ---- the target interface ---- */

static int r_init(uv_loop_t *loop, const bench_opts *o, int nclients)
{
    R.loop = loop;
    R.o = o;
    R.n = nclients;
    R.cl = calloc((size_t)nclients, sizeof *R.cl);
    R.tokens = calloc((size_t)nclients, sizeof *R.tokens);
    if (!R.cl || !R.tokens)
        return -1;
    msgpack_sbuffer_init(&R.sb);
    uv_timer_init(loop, &R.online_timer);
    fc_callbacks cb = {on_open, on_quest, on_close};
    R.fc = fc_ctx_new(loop, &cb, 16u << 20);
    if (!R.fc)
        return -1;
    R.naddr = o->nnodes ? o->nnodes : 1;
    R.addr = calloc((size_t)R.naddr, sizeof *R.addr);
    R.gate_addr = calloc((size_t)R.naddr, sizeof *R.gate_addr);
    if (!R.addr || !R.gate_addr)
        return -1;
    for (int k = 0; k < R.naddr; k++) {
        const char *host = o->nnodes ? o->nodes[k].host : o->host;
        int port = o->nnodes ? o->nodes[k].port : o->port ? o->port : (o->ws ? 13321 : 13325);
        int gate = o->nnodes ? o->nodes[k].gate_port : o->gate_port ? o->gate_port : 13315;
        if (uv_ip4_addr(host, port, &R.addr[k]) != 0 || uv_ip4_addr(host, gate, &R.gate_addr[k]) != 0)
            return -1;
    }
    /* mids: unique across runs against the same data directory. */
    R.mid = ((uint64_t)time(NULL) * 1000u) << 16;
    R.salt = (int64_t)(((uint64_t)time(NULL) << 24) ^ (uv_hrtime() & 0xffffff));
    return 0;
}

static int r_prepare(void)
{
    if (!R.o->secret || !R.o->pid) {
        bench_error(-1, -1, "rtmd needs --pid and --secret");
        return -1;
    }
    R.preparing = 1;
    int links = R.n < GATE_LINKS ? (R.n ? R.n : 1) : GATE_LINKS;
    if (links < R.naddr)
        links = R.naddr; /* every node's gate is used */
    R.ngates = links;
    if (R.n == 0) {
        R.preparing = 0;
        bench_prepared(0);
        return 0;
    }
    for (int k = 0; k < links; k++) {
        R.gate[k] = fc_connect(R.fc, (const struct sockaddr *)&R.gate_addr[k % R.naddr], NULL, 0, NULL, (void *)(intptr_t)(-(k + 1)));
        if (!R.gate[k]) {
            R.preparing = 0;
            return -1;
        }
    }
    return 0;
}

static int r_connect(int i)
{
    if (R.cl[i].state != C_IDLE || !R.tokens[i][0])
        return -1;
    fc_conn *c = fc_connect(R.fc, (const struct sockaddr *)&R.addr[bench_node_of(i)], bench_source_addr(i), R.o->ws,
                            "/service/websocket", cl_tag(i));
    if (!c)
        return -1;
    R.cl[i].conn = c;
    R.cl[i].state = C_CONNECTING;
    return 0;
}

static void on_subscribed(fc_conn *c, const fpnn_packet *ans, int status, void *arg, uint64_t cookie)
{
    bench_subscribed(tag_client(c), status ? status : ans->status);
}

/* Starts the body of a quest of client i in R.sb; -1 when the client is not
 * logged in. */
static int quest_body(int i, msgpack_packer *pk)
{
    if (R.cl[i].state != C_READY)
        return -1;
    msgpack_sbuffer_clear(&R.sb);
    msgpack_packer_init(pk, &R.sb, msgpack_sbuffer_write);
    return 0;
}

static int r_subscribe(int i, uint32_t topic)
{
    msgpack_packer pk;
    if (quest_body(i, &pk) != 0)
        return -1;
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_int(&pk, "rid", R.o->rid_base + topic);
    return fc_quest(R.cl[i].conn, "enterroom", (const uint8_t *)R.sb.data, R.sb.size, on_subscribed, NULL, 0);
}

static void on_sent(fc_conn *c, const fpnn_packet *ans, int status, void *arg, uint64_t cookie)
{
    bench_acked(tag_client(c), cookie, status ? status : ans->status);
}

static int send_common(int i, const char *method, const char *to_key, int64_t to, const void *data, size_t len,
                       uint64_t cookie)
{
    msgpack_packer pk;
    if (quest_body(i, &pk) != 0)
        return -1;
    msgpack_pack_map(&pk, 5);
    mp_pack_kv_int(&pk, to_key, to);
    mp_pack_kv_int(&pk, "mid", (int64_t)++R.mid);
    mp_pack_kv_int(&pk, "mtype", BENCH_MTYPE);
    mp_pack_cstr(&pk, "msg");
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, data, len);
    mp_pack_kv_str(&pk, "attrs", "");
    return fc_quest(R.cl[i].conn, method, (const uint8_t *)R.sb.data, R.sb.size, on_sent, NULL, cookie);
}

static int r_publish(int i, uint32_t topic, const void *data, size_t len, uint64_t cookie)
{
    return send_common(i, "sendroommsg", "rid", R.o->rid_base + topic, data, len, cookie);
}

static int r_send_p2p(int i, int to, const void *data, size_t len, uint64_t cookie)
{
    return send_common(i, "sendmsg", "to", R.o->uid_base + to, data, len, cookie);
}

/* ---- presence across nodes (--nodes p2p) ---- */

#define ONLINE_RETRY_MS 20

static int ask_online(int i, int peer);

static void on_online_timer(uv_timer_t *t)
{
    for (int i = 0; i < R.n; i++) {
        if (!R.cl[i].await_peer)
            continue;
        int peer = R.cl[i].await_peer - 1;
        R.cl[i].await_peer = 0;
        if (ask_online(i, peer) != 0)
            bench_subscribed(i, FPNN_EC_CORE_CONNECTION_CLOSED);
    }
}

/* The answer of getonlineusers about one uid: {uids: []} until the peer's
 * login reached this node, then {uids: [uid]}. */
static void on_online(fc_conn *c, const fpnn_packet *ans, int status, void *arg, uint64_t peer)
{
    int i = tag_client(c);
    if (status || ans->status) {
        bench_subscribed(i, status ? status : ans->status);
        return;
    }
    const uint8_t *v;
    size_t vlen;
    if (rtm_msgpack_map_find(ans->payload, ans->payload_len, "uids", &v, &vlen) != 0 || vlen == 0 ||
        (v[0] != 0x90 && v[0] != 0x91)) {
        bench_error(i, FPNN_EC_CORE_DECODING, "getonlineusers answer without uids");
        bench_subscribed(i, FPNN_EC_CORE_DECODING);
        return;
    }
    if (v[0] == 0x91) {
        bench_subscribed(i, 0);
        return;
    }
    R.cl[i].await_peer = (int)peer + 1;
    if (!uv_is_active((uv_handle_t *)&R.online_timer))
        uv_timer_start(&R.online_timer, on_online_timer, ONLINE_RETRY_MS, 0);
}

static int ask_online(int i, int peer)
{
    msgpack_packer pk;
    if (quest_body(i, &pk) != 0)
        return -1;
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "uids");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, R.o->uid_base + peer);
    return fc_quest(R.cl[i].conn, "getonlineusers", (const uint8_t *)R.sb.data, R.sb.size, on_online, NULL,
                    (uint64_t)peer);
}

static void r_close(int i)
{
    if (!R.cl[i].conn || R.cl[i].state == C_CLOSING)
        return;
    uint8_t st = R.cl[i].state;
    R.cl[i].state = C_CLOSING;
    fc_close(R.cl[i].conn);
    if (st == C_CONNECTING || st == C_AUTHING) /* never reported connected */
        R.cl[i].state = C_CONNECTING;
}

static void r_shutdown(void)
{
    fc_ctx_free(R.fc);
    R.fc = NULL;
    free(R.cl);
    free(R.tokens);
    free(R.addr);
    free(R.gate_addr);
    msgpack_sbuffer_destroy(&R.sb);
}

const bench_target bench_target_rtmd = {
    .name = "rtmd",
    .caps = BENCH_CAP_P2P | BENCH_CAP_PUB_ACK | BENCH_CAP_WS | BENCH_CAP_JOIN_TO_PUBLISH,
    .init = r_init,
    .prepare = r_prepare,
    .connect = r_connect,
    .subscribe = r_subscribe,
    .publish = r_publish,
    .send_p2p = r_send_p2p,
    .await_online = ask_online,
    .close = r_close,
    .shutdown = r_shutdown,
};
