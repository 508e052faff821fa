/* Tests of librtm, the C SDK (include/rtm/client.h), against a small FPNN
 * server written here with libuv: it listens on an ephemeral loopback port
 * in its own thread, speaks plain or encrypted FPNN (package and stream
 * mode) and offers test methods (echo, delayed and missing answers, error
 * answers, closing the link, pinging the client, pushing quests to it).
 *
 * Unit tests link rtmdlib, not librtm, so the shared library built next to
 * this test (../librtm.so, or $LIBRTM_SO) is loaded with dlopen and its API
 * reached through pointers; the server side uses the shared core directly. */
#include "buf.h"
#include "fpnn_crypto.h"
#include "payload.h"
#include "rtm/client.h"
#include "rtm/fpnn.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#ifndef TEST_DATA_DIR
#define TEST_DATA_DIR "tests/data"
#endif
#define SERVER_KEY TEST_DATA_DIR "/test_server_key.pem"

/* ------------------------------------------------------------------ */
/* librtm through dlopen                                                */

#define RTM_API(X)                                                                                                 \
    X(rtm_options_init)                                                                                            \
    X(rtm_client_new)                                                                                              \
    X(rtm_client_free)                                                                                             \
    X(rtm_client_connect)                                                                                          \
    X(rtm_client_wait_connected)                                                                                   \
    X(rtm_client_close)                                                                                            \
    X(rtm_client_is_connected)                                                                                     \
    X(rtm_client_last_error)                                                                                       \
    X(rtm_send_quest)                                                                                              \
    X(rtm_send_quest_json)                                                                                         \
    X(rtm_send_oneway)                                                                                             \
    X(rtm_client_answer)                                                                                           \
    X(rtm_client_answer_error)                                                                                     \
    X(rtm_call)                                                                                                    \
    X(rtm_call_json)                                                                                               \
    X(rtm_result_free)                                                                                             \
    X(rtm_payload_from_json)                                                                                       \
    X(rtm_payload_to_json)                                                                                         \
    X(rtm_free)                                                                                                    \
    X(rtm_load_public_key)                                                                                         \
    X(rtm_set_log_level)                                                                                           \
    X(rtm_version)

#define DECLARE_PTR(name) static __typeof__(name) *p_##name;
RTM_API(DECLARE_PTR)

#define rtm_options_init (*p_rtm_options_init)
#define rtm_client_new (*p_rtm_client_new)
#define rtm_client_free (*p_rtm_client_free)
#define rtm_client_connect (*p_rtm_client_connect)
#define rtm_client_wait_connected (*p_rtm_client_wait_connected)
#define rtm_client_close (*p_rtm_client_close)
#define rtm_client_is_connected (*p_rtm_client_is_connected)
#define rtm_client_last_error (*p_rtm_client_last_error)
#define rtm_send_quest (*p_rtm_send_quest)
#define rtm_send_quest_json (*p_rtm_send_quest_json)
#define rtm_send_oneway (*p_rtm_send_oneway)
#define rtm_client_answer (*p_rtm_client_answer)
#define rtm_client_answer_error (*p_rtm_client_answer_error)
#define rtm_call (*p_rtm_call)
#define rtm_call_json (*p_rtm_call_json)
#define rtm_result_free (*p_rtm_result_free)
#define rtm_payload_from_json (*p_rtm_payload_from_json)
#define rtm_payload_to_json (*p_rtm_payload_to_json)
#define rtm_free (*p_rtm_free)
#define rtm_load_public_key (*p_rtm_load_public_key)
#define rtm_set_log_level (*p_rtm_set_log_level)
#define rtm_version (*p_rtm_version)

static void *librtm;

static int load_librtm(void **state)
{
    (void)state;
    char path[PATH_MAX];
    const char *env = getenv("LIBRTM_SO");
    if (env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return -1;
        exe[n] = '\0';
        snprintf(path, sizeof path, "%s/../librtm.so", dirname(exe));
    }
    librtm = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!librtm) {
        fprintf(stderr, "cannot load librtm (build target rtm, or set LIBRTM_SO): %s\n", dlerror());
        return -1;
    }
#define LOAD_PTR(name)                                                                                             \
    p_##name = (__typeof__(p_##name))dlsym(librtm, #name);                                                                     \
    if (!p_##name) {                                                                                               \
        fprintf(stderr, "librtm lacks %s\n", #name);                                                               \
        return -1;                                                                                                 \
    }
    RTM_API(LOAD_PTR)
    rtm_set_log_level(getenv("RTM_TEST_VERBOSE") ? "debug" : "off");
    return 0;
}

static int unload_librtm(void **state)
{
    (void)state;
    /* Left loaded: libuv's thread pool may still reference it at exit. */
    return 0;
}

/* ------------------------------------------------------------------ */
/* The test server                                                      */

typedef struct srv {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    int port;
    EVP_PKEY *key;           /* set: accept *key */
    uv_mutex_t mu;
    int notes;               /* oneway "note" quests received */
    int accepted;
} srv;

#define MAX_RELAYS 64

typedef struct sconn {
    uv_tcp_t tcp;
    srv *s;
    rtm_buf in;
    rtm_buf raw;
    fpnn_crypto *crypto;
    bool closed;
    bool handle_gone;
    int refs;
    uint32_t next_seq;
    struct {
        uint32_t out_seq, orig_seq;
        bool used;
    } relay[MAX_RELAYS];
} sconn;

typedef struct delayed {
    uv_timer_t timer;
    sconn *k;
    uint32_t seq;
    int64_t v;
} delayed;

typedef struct wreq {
    uv_write_t req;
    uint8_t *data;
} wreq;

static void sconn_maybe_free(sconn *k)
{
    if (!k->handle_gone || k->refs > 0)
        return;
    rtm_buf_free(&k->in);
    rtm_buf_free(&k->raw);
    fpnn_crypto_free(k->crypto);
    free(k);
}

static void on_sconn_closed(uv_handle_t *h)
{
    sconn *k = h->data;
    k->handle_gone = true;
    sconn_maybe_free(k);
}

static void sconn_close(sconn *k)
{
    if (k->closed)
        return;
    k->closed = true;
    uv_close((uv_handle_t *)&k->tcp, on_sconn_closed);
}

static void on_swrite(uv_write_t *r, int status)
{
    (void)status;
    wreq *w = (wreq *)r;
    free(w->data);
    free(w);
}

static void sconn_write(sconn *k, const uint8_t *p, size_t n)
{
    if (k->closed)
        return;
    rtm_buf b = {0};
    if (k->crypto)
        assert_int_equal(fpnn_crypto_encrypt(k->crypto, p, n, &b), 0);
    else
        assert_int_equal(rtm_buf_append(&b, p, n), 0);
    wreq *w = malloc(sizeof *w);
    assert_non_null(w);
    w->data = b.data;
    uv_buf_t ub = uv_buf_init((char *)b.data, (unsigned)b.len);
    if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &ub, 1, on_swrite) != 0) {
        free(b.data);
        free(w);
    }
}

static void sconn_send(sconn *k, uint8_t flag, uint8_t mtype, uint8_t status, uint32_t seq, const char *method,
                       const void *payload, size_t len)
{
    size_t mlen = method ? strlen(method) : 0;
    size_t n = fpnn_encoded_size(mtype, mlen, len);
    uint8_t *p = malloc(n);
    assert_non_null(p);
    fpnn_encode(p, flag, mtype, status, seq, method, mlen, payload, len);
    sconn_write(k, p, n);
    free(p);
}

static void sconn_answer(sconn *k, uint32_t seq, const msgpack_sbuffer *sb)
{
    sconn_send(k, FPNN_FLAG_MSGPACK, FPNN_MT_ANSWER, 0, seq, NULL, sb->data, sb->size);
}

static void sconn_error(sconn *k, uint32_t seq, int64_t code, const char *ex)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rtm_pack_error(&sb, code, ex, "test server");
    sconn_send(k, FPNN_FLAG_MSGPACK, FPNN_MT_ANSWER, 1, seq, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Sends a twoway quest to the client whose answer is relayed as the answer
 * to the client's quest orig_seq. */
static void sconn_relay_quest(sconn *k, uint32_t orig_seq, const char *method, const msgpack_sbuffer *sb)
{
    uint32_t seq = ++k->next_seq;
    int i;
    for (i = 0; i < MAX_RELAYS && k->relay[i].used; i++)
        ;
    assert_true(i < MAX_RELAYS);
    k->relay[i].used = true;
    k->relay[i].out_seq = seq;
    k->relay[i].orig_seq = orig_seq;
    sconn_send(k, FPNN_FLAG_MSGPACK, FPNN_MT_TWOWAY, 0, seq, method, sb->data, sb->size);
}

static void on_delayed_closed(uv_handle_t *h)
{
    delayed *d = h->data;
    d->k->refs--;
    sconn_maybe_free(d->k);
    free(d);
}

static void on_delayed(uv_timer_t *t)
{
    delayed *d = t->data;
    if (!d->k->closed) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_int(&pk, "v", d->v);
        sconn_answer(d->k, d->seq, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    uv_close((uv_handle_t *)t, on_delayed_closed);
}

/* Appends received bytes to k->in, decrypting them once *key is done. */
static void sconn_feed(sconn *k, uint8_t *data, size_t len)
{
    if (!k->crypto) {
        assert_int_equal(rtm_buf_append(&k->in, data, len), 0);
    } else if (fpnn_crypto_stream_mode(k->crypto)) {
        assert_int_equal(fpnn_crypto_decrypt_stream(k->crypto, data, len), 0);
        assert_int_equal(rtm_buf_append(&k->in, data, len), 0);
    } else {
        assert_int_equal(rtm_buf_append(&k->raw, data, len), 0);
        while (rtm_buf_pending(&k->raw) >= 4) {
            const uint8_t *h = rtm_buf_head(&k->raw);
            size_t plen = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
            if (rtm_buf_pending(&k->raw) < 4 + plen)
                break;
            assert_int_equal(rtm_buf_reserve(&k->in, plen), 0);
            assert_int_equal(fpnn_crypto_decrypt_package(k->crypto, h + 4, plen, k->in.data + k->in.len), 0);
            k->in.len += plen;
            rtm_buf_consume(&k->raw, 4 + plen);
        }
    }
}

static void srv_quest(sconn *k, const fpnn_packet *p, bool *crypto_started)
{
    char m[256];
    memcpy(m, p->method, p->method_len);
    m[p->method_len] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(p->flag, p->payload, p->payload_len, &u), 0);

    if (strcmp(m, "*key") == 0) {
        const char *pub;
        size_t publen;
        bool stream = false;
        int64_t bits = 0;
        assert_non_null(k->s->key);
        assert_null(k->crypto);
        assert_true(mp_get_str(&u.data, "publicKey", &pub, &publen));
        assert_int_equal(mp_map_get(&u.data, "publicKey")->type, MSGPACK_OBJECT_BIN);
        assert_true(mp_get_bool(&u.data, "streamMode", &stream));
        assert_true(mp_get_int64(&u.data, "bits", &bits));
        k->crypto = fpnn_crypto_new(k->s->key, (const uint8_t *)pub, publen, (int)bits, stream);
        assert_non_null(k->crypto);
        *crypto_started = true;
        msgpack_pack_map(&pk, 0);
        sconn_answer(k, p->seq, &sb);
    } else if (strcmp(m, "echo") == 0) {
        sconn_send(k, p->flag, FPNN_MT_ANSWER, 0, p->seq, NULL, p->payload, p->payload_len);
    } else if (strcmp(m, "ping") == 0 || strcmp(m, "*ping") == 0) {
        msgpack_pack_map(&pk, 0);
        sconn_answer(k, p->seq, &sb);
    } else if (strcmp(m, "delay") == 0) {
        int64_t ms = 0, v = 0;
        assert_true(mp_get_int64(&u.data, "ms", &ms));
        assert_true(mp_get_int64(&u.data, "v", &v));
        delayed *d = calloc(1, sizeof *d);
        assert_non_null(d);
        d->k = k;
        d->seq = p->seq;
        d->v = v;
        k->refs++;
        uv_timer_init(&k->s->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_delayed, (uint64_t)ms, 0);
    } else if (strcmp(m, "never") == 0) {
        /* no answer */
    } else if (strcmp(m, "close") == 0) {
        sconn_close(k);
    } else if (strcmp(m, "garbage") == 0) {
        static const uint8_t junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
        sconn_write(k, junk, sizeof junk - 1);
    } else if (strcmp(m, "err") == 0) {
        sconn_error(k, p->seq, 200027, "invalid token");
    } else if (strcmp(m, "jsonans") == 0) {
        static const char body[] = "{\"big\":9007199254740993,\"neg\":-5,\"s\":\"x\"}";
        sconn_send(k, FPNN_FLAG_JSON, FPNN_MT_ANSWER, 0, p->seq, NULL, body, sizeof body - 1);
    } else if (strcmp(m, "pingme") == 0) {
        msgpack_pack_map(&pk, 0);
        sconn_relay_quest(k, p->seq, "ping", &sb);
    } else if (strcmp(m, "push") == 0) {
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_int(&pk, "n", 42);
        sconn_relay_quest(k, p->seq, "hello", &sb);
    } else if (strcmp(m, "roompush") == 0) {
        /* The request's map comes back as a pushroommsg quest. */
        msgpack_sbuffer_write(&sb, (const char *)p->payload, p->payload_len);
        sconn_relay_quest(k, p->seq, "pushroommsg", &sb);
    } else if (strcmp(m, "pushoneway") == 0) {
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_int(&pk, "n", 7);
        sconn_send(k, FPNN_FLAG_MSGPACK, FPNN_MT_ONEWAY, 0, 0, "note", sb.data, sb.size);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 0);
        sconn_answer(k, p->seq, &sb);
    } else if (strcmp(m, "note") == 0) {
        uv_mutex_lock(&k->s->mu);
        k->s->notes++;
        uv_mutex_unlock(&k->s->mu);
    } else if (strcmp(m, "count") == 0) {
        uv_mutex_lock(&k->s->mu);
        int n = k->s->notes;
        uv_mutex_unlock(&k->s->mu);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_int(&pk, "n", n);
        sconn_answer(k, p->seq, &sb);
    } else if (p->mtype == FPNN_MT_TWOWAY) {
        sconn_error(k, p->seq, FPNN_EC_CORE_UNKNOWN_METHOD, "unknown method");
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void srv_answer(sconn *k, const fpnn_packet *p)
{
    for (int i = 0; i < MAX_RELAYS; i++) {
        if (k->relay[i].used && k->relay[i].out_seq == p->seq) {
            k->relay[i].used = false;
            sconn_send(k, p->flag, FPNN_MT_ANSWER, p->status, k->relay[i].orig_seq, NULL, p->payload,
                       p->payload_len);
            return;
        }
    }
    fail_msg("answer to unknown seq %u", p->seq);
}

static void sconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void sconn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sconn *k = st->data;
    if (nread < 0) {
        sconn_close(k);
    } else if (nread > 0 && !k->closed) {
        sconn_feed(k, (uint8_t *)buf->base, (size_t)nread);
        while (!k->closed) {
            fpnn_packet p;
            long n = fpnn_parse(rtm_buf_head(&k->in), rtm_buf_pending(&k->in), 64u << 20, &p);
            if (n == 0)
                break;
            assert_true(n > 0);
            bool crypto_started = false;
            if (p.mtype == FPNN_MT_ANSWER)
                srv_answer(k, &p);
            else
                srv_quest(k, &p, &crypto_started);
            if (k->closed)
                break;
            rtm_buf_consume(&k->in, (size_t)n);
            if (crypto_started && rtm_buf_pending(&k->in) > 0) {
                /* What followed *key in the same read is already encrypted. */
                size_t rest = rtm_buf_pending(&k->in);
                uint8_t *tmp = malloc(rest);
                assert_non_null(tmp);
                memcpy(tmp, rtm_buf_head(&k->in), rest);
                rtm_buf_reset(&k->in);
                sconn_feed(k, tmp, rest);
                free(tmp);
            }
        }
    }
    free(buf->base);
}

static void srv_on_conn(uv_stream_t *l, int status)
{
    srv *s = l->data;
    assert_int_equal(status, 0);
    sconn *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->s = s;
    uv_tcp_init(&s->loop, &k->tcp);
    k->tcp.data = k;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&k->tcp), 0);
    uv_mutex_lock(&s->mu);
    s->accepted++;
    uv_mutex_unlock(&s->mu);
    uv_read_start((uv_stream_t *)&k->tcp, sconn_alloc, sconn_read);
}

static void srv_close_any(uv_handle_t *h, void *arg)
{
    srv *s = arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&s->listener || h == (uv_handle_t *)&s->stop)
        uv_close(h, NULL);
    else if (h->type == UV_TCP)
        sconn_close(h->data);
    else if (h->type == UV_TIMER)
        uv_close(h, on_delayed_closed);
}

static void srv_on_stop(uv_async_t *a)
{
    srv *s = a->data;
    uv_walk(&s->loop, srv_close_any, s);
}

static void srv_main(void *arg)
{
    srv *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static srv *srv_start(bool encrypted)
{
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    if (encrypted) {
        char err[256];
        s->key = fpnn_crypto_load_private_key(SERVER_KEY, err, sizeof err);
        if (!s->key)
            fail_msg("%s", err);
    }
    uv_mutex_init(&s->mu);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 64, srv_on_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_async_init(&s->loop, &s->stop, srv_on_stop);
    s->stop.data = s;
    assert_int_equal(uv_thread_create(&s->thread, srv_main, s), 0);
    return s;
}

static void srv_stop(srv *s)
{
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    uv_mutex_destroy(&s->mu);
    EVP_PKEY_free(s->key);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Client helpers                                                        */

typedef struct collector {
    uv_mutex_t mu;
    uv_cond_t cond;
    int answers;
    int codes[256];
    int64_t values[256];      /* "v" of each answer, by the quest's index */
    bool local[256];
    int order[256];           /* indexes in the order answers came */
    int connected;
    int connect_failed;
    int closed;
    char reason[256];
    uint64_t quest_id;        /* last twoway quest seen by the handler */
    int quests;
    int oneways;
    bool answer_in_handler;
} collector;

typedef struct slot {
    collector *col;
    int index;
} slot;

static void col_init(collector *col)
{
    memset(col, 0, sizeof *col);
    uv_mutex_init(&col->mu);
    uv_cond_init(&col->cond);
}

static void col_destroy(collector *col)
{
    uv_cond_destroy(&col->cond);
    uv_mutex_destroy(&col->mu);
}

/* Waits until *counter >= n (read under the lock), at most ms. */
static bool col_wait(collector *col, const int *counter, int n, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_mutex_lock(&col->mu);
    while (*counter < n) {
        uint64_t now = uv_hrtime();
        if (now >= deadline)
            break;
        uv_cond_timedwait(&col->cond, &col->mu, deadline - now);
    }
    bool ok = *counter >= n;
    uv_mutex_unlock(&col->mu);
    return ok;
}

static void on_answer_slot(rtm_client *c, const rtm_answer *a, void *arg)
{
    (void)c;
    slot *s = arg;
    collector *col = s->col;
    int64_t v = -1;
    if (a->code == 0) {
        msgpack_unpacked u;
        if (rtm_payload_decode(FPNN_FLAG_MSGPACK, a->payload, a->payload_len, &u) == 0) {
            mp_get_int64(&u.data, "v", &v);
            msgpack_unpacked_destroy(&u);
        }
    }
    assert_non_null(a->ex);
    uv_mutex_lock(&col->mu);
    col->codes[s->index] = (int)a->code;
    col->values[s->index] = v;
    col->local[s->index] = a->local;
    col->order[col->answers++] = s->index;
    uv_cond_broadcast(&col->cond);
    uv_mutex_unlock(&col->mu);
}

static void on_event_col(rtm_client *c, enum rtm_event ev, const char *reason, void *arg)
{
    (void)c;
    collector *col = arg;
    uv_mutex_lock(&col->mu);
    if (ev == RTM_EVENT_CONNECTED)
        col->connected++;
    else if (ev == RTM_EVENT_CONNECT_FAILED)
        col->connect_failed++;
    else if (ev == RTM_EVENT_CLOSED)
        col->closed++;
    snprintf(col->reason, sizeof col->reason, "%s", reason);
    uv_cond_broadcast(&col->cond);
    uv_mutex_unlock(&col->mu);
}

/* Handler for quests pushed by the server: answers "hello" {n} with
 * {got: n} right away, or leaves it to the test thread. */
static void on_quest_col(rtm_client *c, const rtm_quest *q, void *arg)
{
    collector *col = arg;
    int64_t n = -1;
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, q->payload, q->payload_len, &u), 0);
    mp_get_int64(&u.data, "n", &n);
    msgpack_unpacked_destroy(&u);
    if (!q->twoway) {
        assert_string_equal(q->method, "note");
        assert_int_equal(q->id, 0);
        uv_mutex_lock(&col->mu);
        col->oneways++;
        uv_cond_broadcast(&col->cond);
        uv_mutex_unlock(&col->mu);
        return;
    }
    assert_string_equal(q->method, "hello");
    assert_int_equal(n, 42);
    uv_mutex_lock(&col->mu);
    bool now = col->answer_in_handler;
    col->quest_id = q->id;
    col->quests++;
    uv_cond_broadcast(&col->cond);
    uv_mutex_unlock(&col->mu);
    if (now) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_int(&pk, "got", n);
        assert_int_equal(rtm_client_answer(c, q->id, sb.data, sb.size), 0);
        msgpack_sbuffer_destroy(&sb);
    }
}

static rtm_client *client_for(const srv *s, collector *col, void (*tweak)(rtm_options *))
{
    rtm_options o;
    rtm_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)s->port;
    if (col) {
        o.on_event = on_event_col;
        o.on_quest = on_quest_col;
        o.arg = col;
    }
    if (tweak)
        tweak(&o);
    char err[256];
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("rtm_client_new: %s", err);
    return c;
}

static void pack_delay(msgpack_sbuffer *sb, int64_t ms, int64_t v)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_int(&pk, "ms", ms);
    mp_pack_kv_int(&pk, "v", v);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                 */

static void test_api_basics(void **state)
{
    (void)state;
    assert_true(strlen(rtm_version()) > 0);
    rtm_options o;
    rtm_options_init(&o);
    assert_int_equal(o.bits, 128);
    assert_int_equal(o.quest_timeout_ms, 10000);
    char err[256];
    assert_null(rtm_client_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "host"));
    o.host = "127.0.0.1";
    o.port = 1;
    o.bits = 192;
    assert_null(rtm_client_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "bits"));
    o.bits = 128;
    o.server_key_pem = TEST_DATA_DIR "/test_p256_key.pem";
    assert_null(rtm_client_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "secp256k1"));
    o.server_key_pem = TEST_DATA_DIR "/no_such_key.pem";
    assert_null(rtm_client_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));

    o.server_key_pem = NULL;
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    assert_non_null(c);
    static const char long_method[300] = {[0 ... 298] = 'm'};
    assert_int_equal(rtm_send_quest(c, "x", NULL, 0, 0, NULL, NULL), -1);
    assert_int_equal(rtm_send_quest(c, "", NULL, 0, 0, on_answer_slot, NULL), -1);
    assert_int_equal(rtm_send_quest(c, long_method, NULL, 0, 0, on_answer_slot, NULL), -1);
    assert_int_equal(rtm_send_oneway(c, NULL, NULL, 0), -1);
    assert_int_equal(rtm_client_answer(c, 0, NULL, 0), -1);
    assert_false(rtm_client_is_connected(c));
    rtm_client_free(c);
}

static void test_json_payloads(void **state)
{
    (void)state;
    static const char json[] = "{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"u\":4294967296,"
                               "\"s\":\"h\\u00e9\",\"a\":[1,-1,0.5,null,false]}";
    uint8_t *mp = NULL;
    size_t mplen = 0;
    assert_int_equal(rtm_payload_from_json(json, strlen(json), &mp, &mplen), 0);
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, mp, mplen, &u), 0);
    int64_t v;
    assert_true(mp_get_int64(&u.data, "max", &v));
    assert_true(v == INT64_MAX);
    assert_true(mp_get_int64(&u.data, "min", &v));
    assert_true(v == INT64_MIN);
    assert_true(mp_get_int64(&u.data, "u", &v));
    assert_true(v == 4294967296LL);
    msgpack_unpacked_destroy(&u);
    char *back = rtm_payload_to_json(mp, mplen);
    assert_non_null(back);
    assert_string_equal(back, "{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"u\":4294967296,"
                              "\"s\":\"h\xc3\xa9\",\"a\":[1,-1,0.5,null,false]}");
    rtm_free(back);
    rtm_free(mp);

    assert_int_equal(rtm_payload_from_json("[1]", 3, &mp, &mplen), -1);
    assert_int_equal(rtm_payload_from_json("{", 1, &mp, &mplen), -1);
    assert_null(rtm_payload_to_json("\xc1", 1));
}

static void test_call_echo(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    rtm_client *c = client_for(s, NULL, NULL);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_int(&pk, "max", INT64_MAX);
    mp_pack_kv_int(&pk, "min", INT64_MIN);
    mp_pack_cstr(&pk, "bin");
    msgpack_pack_bin_with_body(&pk, "\x00\x01\xff", 3);

    rtm_result r;
    assert_int_equal(rtm_call(c, "echo", sb.data, sb.size, 2000, &r), 0);
    assert_false(r.local);
    assert_string_equal(r.ex, "");
    assert_int_equal(r.payload_len, sb.size);
    assert_memory_equal(r.payload, sb.data, sb.size);
    rtm_result_free(&r);
    assert_true(rtm_client_is_connected(c));

    /* An empty payload goes out as an empty map; the answer is one too. */
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 2000, &r), 0);
    assert_int_equal(r.payload_len, 1);
    assert_int_equal(r.payload[0], 0x80);
    rtm_result_free(&r);

    /* JSON in, JSON out, int64 exact. */
    assert_int_equal(rtm_call_json(c, "echo", "{\"mid\":9223372036854775807,\"uid\":-42}", 2000, &r), 0);
    char *text = rtm_payload_to_json(r.payload, r.payload_len);
    assert_string_equal(text, "{\"mid\":9223372036854775807,\"uid\":-42}");
    rtm_free(text);
    rtm_result_free(&r);

    /* A JSON answer body is handed over as msgpack. */
    assert_int_equal(rtm_call(c, "jsonans", NULL, 0, 2000, &r), 0);
    text = rtm_payload_to_json(r.payload, r.payload_len);
    assert_string_equal(text, "{\"big\":9007199254740993,\"neg\":-5,\"s\":\"x\"}");
    rtm_free(text);
    rtm_result_free(&r);

    /* A bad JSON payload never leaves the client. */
    assert_int_equal(rtm_call_json(c, "echo", "[1,2]", 2000, &r), FPNN_EC_PROTO_JSON_CONVERT);
    assert_true(r.local);
    rtm_result_free(&r);

    msgpack_sbuffer_destroy(&sb);
    rtm_client_free(c);
    srv_stop(s);
}

static void test_error_answer(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    rtm_client *c = client_for(s, NULL, NULL);
    rtm_result r;
    assert_int_equal(rtm_call(c, "err", NULL, 0, 2000, &r), 200027);
    assert_false(r.local);
    assert_string_equal(r.ex, "invalid token");
    assert_non_null(r.payload);
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, r.payload, r.payload_len, &u), 0);
    const char *raised;
    size_t rlen;
    assert_true(mp_get_str(&u.data, "raised", &raised, &rlen));
    msgpack_unpacked_destroy(&u);
    rtm_result_free(&r);

    assert_int_equal(rtm_call(c, "nosuchmethod", NULL, 0, 2000, &r), FPNN_EC_CORE_UNKNOWN_METHOD);
    assert_false(r.local);
    rtm_result_free(&r);
    rtm_client_free(c);
    srv_stop(s);
}

static void test_timeout(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);
    slot sl[2] = {{&col, 0}, {&col, 1}};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(rtm_send_quest(c, "never", NULL, 0, 200, on_answer_slot, &sl[0]), 0);
    assert_int_equal(rtm_send_quest(c, "ping", NULL, 0, 5000, on_answer_slot, &sl[1]), 0);
    assert_true(col_wait(&col, &col.answers, 2, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(col.order[0], 1); /* the ping answer comes first */
    assert_int_equal(col.codes[1], 0);
    assert_int_equal(col.codes[0], FPNN_EC_CORE_TIMEOUT);
    assert_true(col.local[0]);
    assert_true(ms >= 190 && ms < 3000);

    /* The link stays usable after a timeout. */
    rtm_result r;
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    assert_int_equal(rtm_call(c, "never", NULL, 0, 100, &r), FPNN_EC_CORE_TIMEOUT);
    assert_true(r.local);
    rtm_result_free(&r);
    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void test_pipelined_out_of_order(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);
    enum { N = 100 };
    static slot sl[N];
    for (int i = 0; i < N; i++) {
        sl[i].col = &col;
        sl[i].index = i;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        /* Later quests are answered sooner. */
        pack_delay(&sb, (N - i) * 3, 1000 + i);
        assert_int_equal(rtm_send_quest(c, "delay", sb.data, sb.size, 10000, on_answer_slot, &sl[i]), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_true(col_wait(&col, &col.answers, N, 10000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(col.codes[i], 0);
        assert_int_equal(col.values[i], 1000 + i);
    }
    assert_int_equal(col.order[0], N - 1);
    assert_int_equal(col.order[N - 1], 0);
    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void test_closed_connection(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);
    enum { N = 5 };
    slot sl[N + 1];
    for (int i = 0; i < N; i++) {
        sl[i] = (slot){&col, i};
        assert_int_equal(rtm_send_quest(c, "never", NULL, 0, 10000, on_answer_slot, &sl[i]), 0);
    }
    sl[N] = (slot){&col, N};
    assert_int_equal(rtm_send_quest(c, "close", NULL, 0, 10000, on_answer_slot, &sl[N]), 0);
    assert_true(col_wait(&col, &col.answers, N + 1, 5000));
    for (int i = 0; i <= N; i++) {
        assert_int_equal(col.codes[i], FPNN_EC_CORE_CONNECTION_CLOSED);
        assert_true(col.local[i]);
    }
    assert_true(col_wait(&col, &col.closed, 1, 2000));
    assert_int_equal(col.connected, 1);
    assert_non_null(strstr(col.reason, "closed by peer"));
    assert_false(rtm_client_is_connected(c));

    /* Without auto_reconnect the next quest connects again. */
    rtm_result r;
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    assert_int_equal(col.connected, 2);

    /* A peer that sends something else than FPNN is dropped. */
    assert_int_equal(rtm_call(c, "garbage", NULL, 0, 2000, &r), FPNN_EC_CORE_CONNECTION_CLOSED);
    assert_non_null(strstr(r.ex, "not FPNN"));
    rtm_result_free(&r);

    /* rtm_client_close fails what waits and stays closed. */
    sl[0] = (slot){&col, 0};
    int before = col.answers;
    assert_int_equal(rtm_send_quest(c, "never", NULL, 0, 10000, on_answer_slot, &sl[0]), 0);
    assert_int_equal(rtm_client_wait_connected(c, 2000), 0);
    assert_int_equal(rtm_client_close(c), 0);
    assert_true(col_wait(&col, &col.answers, before + 1, 2000));
    assert_int_equal(col.codes[0], FPNN_EC_CORE_CONNECTION_CLOSED);
    char err[256];
    rtm_client_last_error(c, err, sizeof err);
    assert_string_equal(err, "closed by the application");

    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void test_free_fails_pending(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);
    slot sl[3] = {{&col, 0}, {&col, 1}, {&col, 2}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(rtm_send_quest(c, "never", NULL, 0, 10000, on_answer_slot, &sl[i]), 0);
    assert_int_equal(rtm_client_wait_connected(c, 2000), 0);
    rtm_client_free(c);
    assert_int_equal(col.answers, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(col.codes[i], FPNN_EC_CORE_CONNECTION_CLOSED);
    col_destroy(&col);
    srv_stop(s);
}

static void test_server_ping_answered(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);
    rtm_result r;
    /* The server sends `ping` to the client and relays its answer. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rtm_call(c, "pingme", NULL, 0, 2000, &r), 0);
        assert_false(r.local);
        assert_int_equal(r.payload_len, 1);
        assert_int_equal(r.payload[0], 0x80);
        rtm_result_free(&r);
    }
    assert_int_equal(col.quests, 0); /* the handler never sees ping */
    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void test_server_quests(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, NULL);

    /* Answered inside the handler. */
    col.answer_in_handler = true;
    rtm_result r;
    assert_int_equal(rtm_call(c, "push", NULL, 0, 2000, &r), 0);
    char *text = rtm_payload_to_json(r.payload, r.payload_len);
    assert_string_equal(text, "{\"got\":42}");
    rtm_free(text);
    rtm_result_free(&r);

    /* Answered later from this thread, with an error. */
    uv_mutex_lock(&col.mu);
    col.answer_in_handler = false;
    uv_mutex_unlock(&col.mu);
    slot sl = {&col, 0};
    assert_int_equal(rtm_send_quest(c, "push", NULL, 0, 5000, on_answer_slot, &sl), 0);
    assert_true(col_wait(&col, &col.quests, 2, 2000));
    uv_mutex_lock(&col.mu);
    uint64_t id = col.quest_id;
    uv_mutex_unlock(&col.mu);
    assert_true(id != 0);
    assert_int_equal(rtm_client_answer_error(c, id, 200010, "no"), 0);
    assert_true(col_wait(&col, &col.answers, 1, 2000));
    assert_int_equal(col.codes[0], 200010);
    assert_false(col.local[0]);

    /* Oneway quests from the server reach the handler. */
    assert_int_equal(rtm_call(c, "pushoneway", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    assert_true(col_wait(&col, &col.oneways, 1, 2000));
    rtm_client_free(c);

    /* Without a handler, pushed quests get 20004. */
    c = client_for(s, NULL, NULL);
    assert_int_equal(rtm_call(c, "push", NULL, 0, 2000, &r), FPNN_EC_CORE_UNKNOWN_METHOD);
    assert_false(r.local);
    rtm_result_free(&r);
    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

/* Counts the pushes passed to the application and answers {n: count}. */
typedef struct push_counter {
    uv_mutex_t mu;
    int n;
} push_counter;

static void on_quest_count(rtm_client *c, const rtm_quest *q, void *arg)
{
    push_counter *pc = arg;
    uv_mutex_lock(&pc->mu);
    int n = ++pc->n;
    uv_mutex_unlock(&pc->mu);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_int(&pk, "n", n);
    assert_int_equal(rtm_client_answer(c, q->id, (const uint8_t *)sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

static push_counter *counter_of;

static void tweak_counter(rtm_options *o)
{
    o->on_quest = on_quest_count;
    o->arg = counter_of;
}

static void tweak_pass_repeats(rtm_options *o)
{
    tweak_counter(o);
    o->pass_repeated_pushes = true;
}

/* Has the server push pushroommsg {from, rid, mid, msg} (from_s, when not
 * NULL, a string id) and returns the application's count in its answer,
 * or 0 when the SDK answered {} itself. */
static int64_t room_push(rtm_client *c, int64_t from, const char *from_s, int64_t rid, int64_t mid)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    if (from_s)
        mp_pack_kv_str(&pk, "from", from_s);
    else
        mp_pack_kv_int(&pk, "from", from);
    mp_pack_kv_int(&pk, "rid", rid);
    mp_pack_kv_int(&pk, "mid", mid);
    mp_pack_kv_int(&pk, "mtype", 30);
    mp_pack_kv_str(&pk, "msg", "hi");
    rtm_result r;
    assert_int_equal(rtm_call(c, "roompush", (const uint8_t *)sb.data, sb.size, 2000, &r), 0);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked u;
    assert_int_equal(rtm_payload_decode(FPNN_FLAG_MSGPACK, r.payload, r.payload_len, &u), 0);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    int64_t n = 0;
    if (u.data.via.map.size > 0)
        assert_true(mp_get_int64(&u.data, "n", &n));
    msgpack_unpacked_destroy(&u);
    rtm_result_free(&r);
    return n;
}

/* A message push repeating (method, from, target, mid) is answered {} by
 * the SDK and not passed on (rtmd pushes room messages before their
 * commit); the memory keeps the last 10,000; pass_repeated_pushes turns it
 * off. */
static void test_repeated_pushes(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    push_counter pc = {.n = 0};
    uv_mutex_init(&pc.mu);
    counter_of = &pc;
    rtm_client *c = client_for(s, NULL, tweak_counter);
    assert_int_equal(room_push(c, 7, NULL, 100, 1), 1);
    assert_int_equal(room_push(c, 7, NULL, 100, 1), 0);  /* repeat */
    assert_int_equal(room_push(c, 7, NULL, 100, 2), 2);  /* another mid */
    assert_int_equal(room_push(c, 8, NULL, 100, 1), 3);  /* another sender */
    assert_int_equal(room_push(c, 7, NULL, 101, 1), 4);  /* another room */
    assert_int_equal(room_push(c, 0, "alice", 100, 1), 5); /* a string id is not the integer */
    assert_int_equal(room_push(c, 0, "alice", 100, 1), 0);
    assert_int_equal(room_push(c, 7, NULL, 100, 2), 0);
    /* Bounded: 10,000 newer pushes make it forget the first. */
    for (int64_t i = 0; i < 10000; i++)
        assert_int_equal(room_push(c, 9, NULL, 100, 1000 + i), 6 + i);
    assert_int_equal(room_push(c, 9, NULL, 100, 1000 + 9999), 0);
    assert_int_equal(room_push(c, 7, NULL, 100, 1), 10006);
    rtm_client_free(c);

    pc.n = 0;
    c = client_for(s, NULL, tweak_pass_repeats);
    assert_int_equal(room_push(c, 7, NULL, 100, 1), 1);
    assert_int_equal(room_push(c, 7, NULL, 100, 1), 2);
    rtm_client_free(c);
    uv_mutex_destroy(&pc.mu);
    srv_stop(s);
}

static void test_oneway_order(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    rtm_client *c = client_for(s, NULL, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(rtm_send_oneway(c, "note", NULL, 0), 0);
    rtm_result r;
    assert_int_equal(rtm_call(c, "count", NULL, 0, 2000, &r), 0);
    char *text = rtm_payload_to_json(r.payload, r.payload_len);
    assert_string_equal(text, "{\"n\":10}");
    rtm_free(text);
    rtm_result_free(&r);
    rtm_client_free(c);
    srv_stop(s);
}

static void fast_reconnect(rtm_options *o)
{
    o->auto_reconnect = true;
    o->reconnect_min_ms = 20;
    o->reconnect_max_ms = 100;
}

static void test_auto_reconnect(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_client *c = client_for(s, &col, fast_reconnect);
    assert_int_equal(rtm_client_connect(c), 0);
    assert_true(col_wait(&col, &col.connected, 1, 2000));
    rtm_result r;
    assert_int_equal(rtm_call(c, "close", NULL, 0, 2000, &r), FPNN_EC_CORE_CONNECTION_CLOSED);
    rtm_result_free(&r);
    /* Back without any quest asking for it. */
    assert_true(col_wait(&col, &col.connected, 2, 3000));
    assert_int_equal(col.closed, 1);
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    rtm_client_free(c);
    uv_mutex_lock(&s->mu);
    assert_int_equal(s->accepted, 2);
    uv_mutex_unlock(&s->mu);
    col_destroy(&col);
    srv_stop(s);
}

/* A port with nothing listening: bind, read the port, close. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_connect_refused(void **state)
{
    (void)state;
    collector col;
    col_init(&col);
    srv fake = {.port = free_port()};
    rtm_client *c = client_for(&fake, &col, NULL);
    assert_int_equal(rtm_client_wait_connected(c, 2000), FPNN_EC_CORE_CONNECTION_CLOSED);
    char err[256];
    rtm_client_last_error(c, err, sizeof err);
    assert_non_null(strstr(err, "refused"));
    assert_int_equal(col.connect_failed, 1);
    rtm_result r;
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 2000, &r), FPNN_EC_CORE_CONNECTION_CLOSED);
    assert_true(r.local);
    assert_non_null(strstr(r.ex, "refused"));
    rtm_result_free(&r);
    rtm_client_free(c);

    /* With auto_reconnect, attempts go on with backoff until connect. */
    c = client_for(&fake, &col, fast_reconnect);
    assert_int_equal(rtm_client_connect(c), 0);
    assert_true(col_wait(&col, &col.connect_failed, 4, 3000));
    rtm_client_free(c);
    col_destroy(&col);
}

/* A listener that never accepts: TCP connects, *key is never answered. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);

    rtm_options o;
    rtm_options_init(&o);
    o.host = "localhost";
    o.port = ntohs(a.sin_port);
    o.server_key_pem = SERVER_KEY;
    o.connect_timeout_ms = 300;
    char err[256];
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    assert_non_null(c);
    /* A quest waiting for the link times out on its own deadline. */
    rtm_result r;
    assert_int_equal(rtm_call(c, "ping", NULL, 0, 100, &r), FPNN_EC_CORE_TIMEOUT);
    assert_true(r.local);
    rtm_result_free(&r);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(rtm_client_wait_connected(c, 5000), FPNN_EC_CORE_CONNECTION_CLOSED);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_true(ms < 3000);
    rtm_client_last_error(c, err, sizeof err);
    assert_non_null(strstr(err, "timed out"));
    rtm_client_free(c);
    close(fd);
}

/* A peer that never reads: past 64 MiB queued, quests are refused. */
static void test_output_full(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    collector col;
    col_init(&col);
    srv fake = {.port = ntohs(a.sin_port)};
    rtm_client *c = client_for(&fake, &col, NULL);
    assert_int_equal(rtm_client_wait_connected(c, 2000), 0);

    enum { N = 80 };
    size_t len = 1u << 20;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    memset(body, 0, len);
    body[0] = 0x81; /* {"": bin 32} */
    body[1] = 0xa0;
    body[2] = 0xc6;
    uint32_t blen = (uint32_t)(len - 7);
    body[3] = (uint8_t)(blen >> 24);
    body[4] = (uint8_t)(blen >> 16);
    body[5] = (uint8_t)(blen >> 8);
    body[6] = (uint8_t)blen;
    slot sl[N];
    for (int i = 0; i < N; i++) {
        sl[i] = (slot){&col, i};
        assert_int_equal(rtm_send_quest(c, "q", body, len, 10000, on_answer_slot, &sl[i]), 0);
    }
    free(body);
    assert_true(col_wait(&col, &col.answers, 1, 5000));
    uv_mutex_lock(&col.mu);
    int first = col.order[0];
    assert_int_equal(col.codes[first], FPNN_EC_CORE_SEND_ERROR);
    assert_true(col.local[first]);
    assert_true(first >= 60); /* 64 MiB went out first */
    uv_mutex_unlock(&col.mu);
    rtm_client_free(c);
    assert_int_equal(col.answers, N);
    col_destroy(&col);
    close(fd);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    collector col;
    col_init(&col);
    rtm_options o;
    rtm_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)s->port;
    o.idle_timeout_ms = 200;
    o.on_event = on_event_col;
    o.arg = &col;
    char err[256];
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rtm_client_wait_connected(c, 2000), 0);
    assert_true(col_wait(&col, &col.closed, 1, 3000));
    assert_non_null(strstr(col.reason, "nothing received"));
    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void run_encrypted(int bits, bool stream, bool raw_key)
{
    srv *s = srv_start(true);
    collector col;
    col_init(&col);
    rtm_options o;
    rtm_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)s->port;
    o.bits = bits;
    o.stream_mode = stream;
    o.on_event = on_event_col;
    o.on_quest = on_quest_col;
    o.arg = &col;
    col.answer_in_handler = true;
    uint8_t pub[RTM_PUBKEY_LEN];
    char err[256];
    if (raw_key) {
        assert_int_equal(rtm_load_public_key(SERVER_KEY, pub, err, sizeof err), 0);
        o.server_key = pub;
    } else {
        o.server_key_pem = SERVER_KEY;
    }
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);

    /* Pipelined from the start: they wait for the handshake. */
    enum { N = 20 };
    slot sl[N];
    for (int i = 0; i < N; i++) {
        sl[i] = (slot){&col, i};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_delay(&sb, (N - i), i);
        assert_int_equal(rtm_send_quest(c, "delay", sb.data, sb.size, 5000, on_answer_slot, &sl[i]), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_true(col_wait(&col, &col.answers, N, 5000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(col.codes[i], 0);
        assert_int_equal(col.values[i], i);
    }

    /* A payload spanning many reads. */
    size_t big = 300000;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "blob");
    char *blob = malloc(big);
    assert_non_null(blob);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 31 + 7);
    msgpack_pack_bin_with_body(&pk, blob, big);
    free(blob);
    rtm_result r;
    assert_int_equal(rtm_call(c, "echo", sb.data, sb.size, 5000, &r), 0);
    assert_int_equal(r.payload_len, sb.size);
    assert_memory_equal(r.payload, sb.data, sb.size);
    rtm_result_free(&r);
    msgpack_sbuffer_destroy(&sb);

    /* Server-initiated quests over the encrypted link. */
    assert_int_equal(rtm_call(c, "pingme", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    assert_int_equal(rtm_call(c, "push", NULL, 0, 2000, &r), 0);
    rtm_result_free(&r);
    assert_int_equal(rtm_call(c, "err", NULL, 0, 2000, &r), 200027);
    assert_string_equal(r.ex, "invalid token");
    rtm_result_free(&r);
    assert_int_equal(col.connected, 1);

    rtm_client_free(c);
    col_destroy(&col);
    srv_stop(s);
}

static void test_encrypted_package_128(void **state)
{
    (void)state;
    run_encrypted(128, false, false);
}

static void test_encrypted_package_256(void **state)
{
    (void)state;
    run_encrypted(256, false, true);
}

static void test_encrypted_stream_128(void **state)
{
    (void)state;
    run_encrypted(128, true, true);
}

static void test_encrypted_stream_256(void **state)
{
    (void)state;
    run_encrypted(256, true, false);
}

static void test_encrypted_wrong_key(void **state)
{
    (void)state;
    srv *s = srv_start(true);
    rtm_options o;
    rtm_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)s->port;
    o.server_key_pem = TEST_DATA_DIR "/test_client_key.pem"; /* not the server's */
    char err[256];
    rtm_client *c = rtm_client_new(&o, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rtm_client_wait_connected(c, 2000), FPNN_EC_CORE_CONNECTION_CLOSED);
    rtm_client_last_error(c, err, sizeof err);
    assert_non_null(strstr(err, "wrong server key"));
    rtm_client_free(c);
    srv_stop(s);
}

/* Many threads share one client. */
typedef struct hammer {
    rtm_client *c;
    int id;
    int ok;
} hammer;

static void hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < 50; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"t\":%d,\"i\":%d}", h->id, i);
        rtm_result r;
        if (rtm_call_json(h->c, "echo", json, 5000, &r) == 0) {
            char *text = rtm_payload_to_json(r.payload, r.payload_len);
            if (text && strcmp(text, json) == 0)
                h->ok++;
            rtm_free(text);
        }
        rtm_result_free(&r);
    }
}

static void test_threads(void **state)
{
    (void)state;
    srv *s = srv_start(false);
    rtm_client *c = client_for(s, NULL, NULL);
    enum { T = 4 };
    hammer h[T];
    uv_thread_t th[T];
    for (int i = 0; i < T; i++) {
        h[i] = (hammer){c, i, 0};
        assert_int_equal(uv_thread_create(&th[i], hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        uv_thread_join(&th[i]);
        assert_int_equal(h[i].ok, 50);
    }
    rtm_client_free(c);
    srv_stop(s);
}

/* ------------------------------------------------------------------ */
/* rtmctl, the tool built next to librtm                                */

static bool find_rtmctl(char *path, size_t len)
{
    const char *env = getenv("RTMCTL_BIN");
    if (env) {
        snprintf(path, len, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return false;
        exe[n] = '\0';
        snprintf(path, len, "%s/../rtmctl", dirname(exe));
    }
    return access(path, X_OK) == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return buf;
}

/* Runs rtmctl with args (shell syntax); returns its exit status and its
 * output (free both). */
__attribute__((format(printf, 4, 5))) static int run_ctl(const char *bin, char **out, char **err, const char *fmt,
                                                         ...)
{
    char args[1024], cmd[2048], outp[64], errp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(outp, sizeof outp, "/tmp/test_librtm_%d.out", (int)getpid());
    snprintf(errp, sizeof errp, "/tmp/test_librtm_%d.err", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s </dev/null >%s 2>%s", bin, args, outp, errp);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    *out = slurp(outp);
    *err = slurp(errp);
    return WEXITSTATUS(st);
}

static void test_rtmctl(void **state)
{
    (void)state;
    char bin[PATH_MAX];
    if (!find_rtmctl(bin, sizeof bin))
        fail_msg("rtmctl is not built next to this test (set RTMCTL_BIN)");
    srv *s = srv_start(false);
    int port = s->port;
    char *out, *err;

    assert_int_equal(run_ctl(bin, &out, &err, "ping 127.0.0.1:%d", port), 0);
    char want[128];
    snprintf(want, sizeof want, "ping 127.0.0.1:%d: answer in ", port);
    assert_true(strncmp(out, want, strlen(want)) == 0);
    assert_string_equal(err, "");
    free(out), free(err);

    assert_int_equal(run_ctl(bin, &out, &err,
                             "call 127.0.0.1:%d echo '{\"mid\":9223372036854775807,\"uid\":-9223372036854775808,"
                             "\"s\":\"h\u00e9\",\"l\":[1,2.5,null,true]}'",
                             port),
                     0);
    assert_string_equal(out, "{\"mid\":9223372036854775807,\"uid\":-9223372036854775808,\"s\":\"h\xc3\xa9\","
                             "\"l\":[1,2.5,null,true]}\n");
    free(out), free(err);

    assert_int_equal(run_ctl(bin, &out, &err, "call localhost:%d err '{}'", port), 2);
    assert_string_equal(out, "");
    assert_string_equal(err, "{\"code\":200027,\"ex\":\"invalid token\"}\n");
    free(out), free(err);

    assert_int_equal(run_ctl(bin, &out, &err, "call 127.0.0.1:%d nosuch '{}'", port), 2);
    assert_string_equal(err, "{\"code\":20004,\"ex\":\"unknown method\"}\n");
    free(out), free(err);

    assert_int_equal(run_ctl(bin, &out, &err, "--timeout 0.3 call 127.0.0.1:%d never '{}'", port), 1);
    assert_non_null(strstr(err, "no answer in time"));
    free(out), free(err);

    /* Usage errors. */
    assert_int_equal(run_ctl(bin, &out, &err, "call 127.0.0.1:%d echo '[1]'", port), 1);
    assert_non_null(strstr(err, "JSON object"));
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "call 127.0.0.1:%d echo '{bad'", port), 1);
    assert_non_null(strstr(err, "not valid JSON"));
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "ping 127.0.0.1"), 1);
    assert_non_null(strstr(err, "HOST:PORT"));
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "--bits 512 ping 127.0.0.1:%d", port), 1);
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "%s", ""), 1);
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "--help"), 0);
    assert_non_null(strstr(out, "usage: rtmctl"));
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "--version"), 0);
    snprintf(want, sizeof want, "rtmctl %s\n", rtm_version());
    assert_string_equal(out, want);
    free(out), free(err);

    /* Nobody listening. */
    assert_int_equal(run_ctl(bin, &out, &err, "ping 127.0.0.1:%d", free_port()), 1);
    assert_non_null(strstr(err, "refused"));
    free(out), free(err);
    srv_stop(s);

    /* Encrypted. */
    s = srv_start(true);
    port = s->port;
    assert_int_equal(
        run_ctl(bin, &out, &err, "--key %s --stream --bits 256 call 127.0.0.1:%d echo '{\"a\":1}'", SERVER_KEY, port),
        0);
    assert_string_equal(out, "{\"a\":1}\n");
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "--key %s ping 127.0.0.1:%d", SERVER_KEY, port), 0);
    free(out), free(err);
    assert_int_equal(run_ctl(bin, &out, &err, "--key %s/test_client_key.pem ping 127.0.0.1:%d", TEST_DATA_DIR, port),
                     1);
    assert_non_null(strstr(err, "wrong server key"));
    free(out), free(err);
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_basics),
        cmocka_unit_test(test_json_payloads),
        cmocka_unit_test(test_call_echo),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_pipelined_out_of_order),
        cmocka_unit_test(test_closed_connection),
        cmocka_unit_test(test_free_fails_pending),
        cmocka_unit_test(test_server_ping_answered),
        cmocka_unit_test(test_server_quests),
        cmocka_unit_test(test_repeated_pushes),
        cmocka_unit_test(test_oneway_order),
        cmocka_unit_test(test_auto_reconnect),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_output_full),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_encrypted_package_128),
        cmocka_unit_test(test_encrypted_package_256),
        cmocka_unit_test(test_encrypted_stream_128),
        cmocka_unit_test(test_encrypted_stream_256),
        cmocka_unit_test(test_encrypted_wrong_key),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rtmctl),
    };
    return cmocka_run_group_tests_name("librtm", tests, load_librtm, unload_librtm);
}
