/* Method dispatch: the method table (an open-addressing hash of method
 * names), turning an FPNN quest into an rtmd_request for its handler, and
 * encoding answers and error answers back in the quest's own format. */
#include "methods.h"

#include "log.h"
#include "payload.h"
#include "rtm_errors.h"
#include "users.h"

#include <stdlib.h>
#include <string.h>

#define METHOD_SLOTS 1024 /* power of two, well above the RTM method count */

struct rtmd_methods {
    rtmd_method slots[METHOD_SLOTS];
    size_t count;
};

static uint32_t hash_name(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

struct rtmd_methods *methods_new(void)
{
    return calloc(1, sizeof(struct rtmd_methods));
}

void methods_free(struct rtmd_methods *m)
{
    free(m);
}

static rtmd_method *find_slot(struct rtmd_methods *m, const char *name, size_t len)
{
    uint32_t i = hash_name(name, len) & (METHOD_SLOTS - 1);
    for (;;) {
        rtmd_method *slot = &m->slots[i];
        if (!slot->name || (strlen(slot->name) == len && memcmp(slot->name, name, len) == 0))
            return slot;
        i = (i + 1) & (METHOD_SLOTS - 1);
    }
}

int methods_register(struct rtmd_methods *m, const rtmd_method *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(table[i].name);
        if (len == 0 || len > FPNN_MAX_METHOD)
            return -1;
        rtmd_method *slot = find_slot(m, table[i].name, len);
        if (!slot->name) {
            if (m->count + 1 >= METHOD_SLOTS / 2)
                return -1;
            m->count++;
        }
        *slot = table[i];
    }
    return 0;
}

const rtmd_method *methods_find(const struct rtmd_methods *m, const char *name, size_t len)
{
    const rtmd_method *slot = find_slot((struct rtmd_methods *)m, name, len);
    return slot->name ? slot : NULL;
}

static void request_free(rtmd_request *req)
{
    msgpack_unpacked_destroy(&req->payload);
    conn_unref(req->conn);
    free(req);
}

/* Encodes and queues an answer with the given msgpack body. */
static void send_answer(rtmd_request *req, uint8_t status, const char *body, size_t len)
{
    rtmd_conn *c = req->conn;
    if (!req->twoway || c->closing)
        return;
    char *json = NULL;
    if (req->flag == FPNN_FLAG_JSON) {
        json = rtm_msgpack_to_json((const uint8_t *)body, len, &len);
        if (!json) {
            LOG_ERROR("answer of %s could not be converted to JSON", req->method);
            return;
        }
        body = json;
    }
    rtm_buf *b = &req->srv->scratch;
    size_t size = fpnn_encoded_size(FPNN_MT_ANSWER, 0, len);
    rtm_buf_reset(b);
    if (rtm_buf_reserve(b, size) == 0) {
        b->len = fpnn_encode(b->data, req->flag, FPNN_MT_ANSWER, status, req->seq, NULL, 0, (const uint8_t *)body, len);
        conn_send_packet(c, b->data, b->len);
    }
    free(json);
}

void request_answer(rtmd_request *req, const msgpack_sbuffer *body)
{
    send_answer(req, 0, body->data, body->size);
    request_free(req);
}

void request_answer_empty(rtmd_request *req)
{
    send_answer(req, 0, "\x80", 1);
    request_free(req);
}

void request_error(rtmd_request *req, int64_t code, const char *ex)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    rtm_pack_error(&body, code, ex, req->method);
    send_answer(req, 1, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
    request_free(req);
}

int rtmd_dispatch_packet(rtmd_conn *c, const fpnn_packet *pkt)
{
    if (pkt->mtype == FPNN_MT_ANSWER)
        return 0; /* answers to server quests (pings): arrival is what counts */
    rtmd_request *req = calloc(1, sizeof *req);
    if (!req)
        return -1;
    req->srv = c->srv;
    req->conn = c;
    conn_ref(c);
    req->gate = c->gate;
    req->twoway = pkt->mtype == FPNN_MT_TWOWAY;
    req->flag = pkt->flag;
    req->seq = pkt->seq;
    memcpy(req->method, pkt->method, pkt->method_len);
    req->method[pkt->method_len] = '\0';
    if (rtm_payload_decode(pkt->flag, pkt->payload, pkt->payload_len, &req->payload) != 0) {
        request_free(req);
        return -1; /* the transport closes the link */
    }
    req->args = &req->payload.data;
    const rtmd_method *m = methods_find(c->srv->methods, pkt->method, pkt->method_len);
    if (!m || !(m->gates & GATE_BIT(c->gate))) {
        request_error(req, FPNN_EC_CORE_UNKNOWN_METHOD, "unknown method");
        return 0;
    }
    if (!(m->flags & RTMD_M_OPEN)) {
        if (c->gate == GATE_SERVER_TCP) {
            int code = auth_verify_signed(req);
            if (code != 0) {
                request_error(req, code, "invalid pid or sign");
                return 0;
            }
        } else if (!c->session) {
            request_error(req, RTM_EC_UNAUTHORIZED, "unauthorized");
            return 0;
        } else {
            req->project = rtmd_server_project(c->srv, c->session->user->pid);
            req->uid = c->session->user->uid;
        }
    }
    m->handler(req);
    return 0;
}
