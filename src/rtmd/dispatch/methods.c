/* Method dispatch: the method table (an open-addressing hash of method
 * names), turning an FPNN quest into an rtmd_request for its handler, and
 * encoding answers and error answers back in the quest's own format. */
#include "methods.h"

#include "hash.h"
#include "lathist.h"
#include "log.h"
#include "payload.h"
#include "rtm_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_SLOTS 1024 /* power of two, well above the RTM method count */

struct rtmd_methods {
    rtmd_method slots[METHOD_SLOTS];
    size_t count;
    rtmd_authorize_fn authorize[GATE_COUNT];
    rtmd_translate_fn translate[GATE_COUNT];
};

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
    uint32_t i = (uint32_t)(rtm_hash64(name, len) & (METHOD_SLOTS - 1));
    for (;;) {
        rtmd_method *slot = &m->slots[i];
        if (!slot->name || (strlen(slot->name) == len && memcmp(slot->name, name, len) == 0))
            return slot;
        i = (i + 1) & (METHOD_SLOTS - 1);
    }
}

void methods_set_authorizer(struct rtmd_methods *m, unsigned gates, rtmd_authorize_fn fn)
{
    for (int g = 0; g < GATE_COUNT; g++)
        if (gates & GATE_BIT(g))
            m->authorize[g] = fn;
}

void methods_set_translator(struct rtmd_methods *m, unsigned gates, rtmd_translate_fn fn)
{
    for (int g = 0; g < GATE_COUNT; g++)
        if (gates & GATE_BIT(g))
            m->translate[g] = fn;
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

void methods_pack_list(const struct rtmd_methods *m, msgpack_packer *pk)
{
    msgpack_pack_map(pk, (uint32_t)m->count);
    for (size_t i = 0; i < METHOD_SLOTS; i++) {
        const rtmd_method *slot = &m->slots[i];
        if (!slot->name)
            continue;
        mp_pack_cstr(pk, slot->name);
        uint32_t n = 0;
        for (int g = 0; g < GATE_COUNT; g++)
            n += (slot->gates & GATE_BIT(g)) != 0;
        msgpack_pack_array(pk, n);
        for (int g = 0; g < GATE_COUNT; g++)
            if (slot->gates & GATE_BIT(g))
                mp_pack_cstr(pk, rtmd_gate_name((rtmd_gate)g));
    }
}

static void request_free(rtmd_request *req)
{
    free(req->held_body);
    msgpack_unpacked_destroy(&req->payload);
    conn_unref(req->conn);
    free(req);
}

/* The answer of a JSON quest whose answer has no JSON form (see
 * rtm_msgpack_to_json): an error that always converts, since its only peer
 * string, the method name, is written as text or base64. Should even that
 * fail (out of memory), a fixed text without the method. */
#define JSON_UNENCODABLE_EX "answer cannot be expressed in JSON, ask with msgpack"
static char *json_unencodable_error(const rtmd_request *req, size_t *len)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    rtm_pack_error(&body, FPNN_EC_CORE_ENCODING, JSON_UNENCODABLE_EX, req->method);
    char *json = rtm_msgpack_to_json((const uint8_t *)body.data, body.size, len);
    msgpack_sbuffer_destroy(&body);
    if (json)
        return json;
    static const char fixed[] = "{\"code\":20005,\"ex\":\"" JSON_UNENCODABLE_EX "\",\"raised\":\"\"}";
    json = malloc(sizeof fixed);
    if (json) {
        memcpy(json, fixed, sizeof fixed);
        *len = sizeof fixed - 1;
    }
    return json;
}

/* Encodes and queues an answer with the given msgpack body, converted to
 * JSON for a JSON quest. Every twoway quest gets an answer packet. */
static void send_answer(rtmd_request *req, uint8_t status, const char *body, size_t len)
{
    rtmd_conn *c = req->conn;
    if (!req->twoway || c->closing)
        return;
    char *json = NULL;
    if (req->flag == FPNN_FLAG_JSON) {
        json = rtm_msgpack_to_json((const uint8_t *)body, len, &len);
        if (!json) {
            char m[RTM_LOG_STR_SIZE];
            LOG_WARN("answer of %s has no JSON form: answering error %d", rtm_log_str(m, req->method, strlen(req->method)),
                     FPNN_EC_CORE_ENCODING);
            status = 1;
            json = json_unencodable_error(req, &len);
            if (!json) {
                conn_close(c, "out of memory");
                return;
            }
        }
        body = json;
    }
    rtm_buf *b = &req->srv->net.scratch;
    size_t size = fpnn_encoded_size(FPNN_MT_ANSWER, 0, len);
    if (size > req->srv->cfg.max_packet && status == 0) {
        /* The peer would drop it (and rtmd its link): a clear error
         * instead, small enough to go out. */
        free(json);
        msgpack_sbuffer err;
        msgpack_sbuffer_init(&err);
        rtm_pack_error(&err, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "answer larger than max_packet", req->method);
        send_answer(req, 1, err.data, err.size);
        msgpack_sbuffer_destroy(&err);
        return;
    }
    rtm_buf_reset(b);
    if (rtm_buf_reserve(b, size) == 0) {
        b->len = fpnn_encode(b->data, req->flag, FPNN_MT_ANSWER, status, req->seq, NULL, 0, (const uint8_t *)body, len);
        conn_send_packet(c, b->data, b->len);
    } else {
        conn_close(c, "out of memory");
    }
    free(json);
}

/* Sends the answer and frees the request, or keeps the answer while the
 * request is held. */
/* The text of the quest's argument key (an integer or a string) for a log
 * line; "" when it is absent or something else. */
static const char *arg_text(const rtmd_request *req, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    int64_t v;
    buf[0] = '\0';
    if (o && mp_obj_int64(o, &v))
        snprintf(buf, cap, "%lld", (long long)v);
    else if (o && o->type == MSGPACK_OBJECT_STR)
        snprintf(buf, cap, "%.*s", (int)(o->via.str.size < cap ? o->via.str.size : cap - 1), o->via.str.ptr);
    return buf;
}

/* The outcome of a login (RTMD_M_LOGIN), counted in rtmd_logins_total and
 * logged at info as one event named after the method, with the
 * connection's fields, the pid and uid it asked for and the result: ok,
 * denied (an answer {ok: false}) or error (with its code and ex). */
static void login_outcome(rtmd_request *req, uint8_t status, const char *body, size_t len)
{
    static const char *const results[LOGIN_RESULTS] = {"ok", "denied", "error"};
    rtmd_login_result result = status ? LOGIN_ERROR : LOGIN_OK;
    char code[24] = "", ex[160] = "", pid[24], uid[160];
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, body, len, NULL) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *ok = mp_map_get(&u.data, "ok");
        const msgpack_object *c = mp_map_get(&u.data, "code");
        const char *text;
        size_t text_len;
        int64_t v;
        if (!status && ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean)
            result = LOGIN_DENIED;
        if (status && c && mp_obj_int64(c, &v))
            snprintf(code, sizeof code, "%lld", (long long)v);
        if (status && mp_get_str(&u.data, "ex", &text, &text_len))
            snprintf(ex, sizeof ex, "%.*s", (int)(text_len < sizeof ex ? text_len : sizeof ex - 1), text);
    }
    req->srv->net.metrics.logins[result]++;
    if (rtm_log_enabled(RTM_LOG_INFO)) {
        const char *fields[] = {"pid",    arg_text(req, "pid", pid, sizeof pid), "uid", arg_text(req, "uid", uid, sizeof uid),
                                "result", results[result], "code", code, "ex", ex};
        conn_log_event(req->conn, req->method, fields, status ? 10 : 6);
    }
    msgpack_unpacked_destroy(&u);
}

static void finish(rtmd_request *req, uint8_t status, const char *body, size_t len)
{
    if (req->mflags & RTMD_M_LOGIN)
        login_outcome(req, status, body, len);
    if (req->holds > 0) {
        req->answered = true;
        if (!req->twoway)
            return;
        req->held_body = malloc(len ? len : 1);
        if (req->held_body) {
            memcpy(req->held_body, body, len);
            req->held_len = (uint32_t)len;
            req->held_status = status;
        } else {
            send_answer(req, status, body, len); /* out of memory: now rather than never */
        }
        return; /* the last request_release frees it */
    }
    send_answer(req, status, body, len);
    request_free(req);
}

void request_hold(rtmd_request *req)
{
    req->holds++;
}

void request_release(rtmd_request *req)
{
    if (--req->holds > 0 || !req->answered)
        return;
    if (req->held_body)
        send_answer(req, req->held_status, req->held_body, req->held_len);
    request_free(req);
}

void request_answer(rtmd_request *req, const msgpack_sbuffer *body)
{
    finish(req, 0, body->data, body->size);
}

void request_answer_empty(rtmd_request *req)
{
    finish(req, 0, "\x80", 1);
}

void request_error(rtmd_request *req, int64_t code, const char *ex)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    rtm_pack_error(&body, code, ex, req->method);
    finish(req, 1, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
}

/* Starts an answer {key: ...}; the caller packs the value, then calls
 * answer_one_end. */
static void answer_one_begin(msgpack_sbuffer *body, msgpack_packer *pk, const char *key)
{
    msgpack_sbuffer_init(body);
    msgpack_packer_init(pk, body, msgpack_sbuffer_write);
    msgpack_pack_map(pk, 1);
    mp_pack_cstr(pk, key);
}

static void answer_one_end(rtmd_request *req, msgpack_sbuffer *body)
{
    request_answer(req, body);
    msgpack_sbuffer_destroy(body);
}

void request_answer_bool(rtmd_request *req, const char *key, bool value)
{
    msgpack_sbuffer body;
    msgpack_packer pk;
    answer_one_begin(&body, &pk, key);
    if (value)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    answer_one_end(req, &body);
}

void request_answer_ids(rtmd_request *req, const char *key, const int64_t *ids, size_t n)
{
    msgpack_sbuffer body;
    msgpack_packer pk;
    answer_one_begin(&body, &pk, key);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int64(&pk, ids[i]);
    answer_one_end(req, &body);
}

/* ---- argument helpers ---- */

void req_arg_error(rtmd_request *req, const char *key)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    bool missing = !o || o->type == MSGPACK_OBJECT_NIL;
    char ex[96];
    snprintf(ex, sizeof ex, "missing or invalid '%s'", key);
    request_error(req, missing ? FPNN_EC_PROTO_KEY_NOT_FOUND : FPNN_EC_PROTO_TYPE_CONVERT, ex);
}

bool req_arg_int64(rtmd_request *req, const char *key, int64_t *out)
{
    if (mp_get_int64(req->args, key, out))
        return true;
    req_arg_error(req, key);
    return false;
}

bool req_arg_optional(rtmd_request *req, const char *key, enum req_kind kind)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    int64_t i;
    const char *s;
    size_t n;
    if (!o || o->type == MSGPACK_OBJECT_NIL || (kind == REQ_BOOL && o->type == MSGPACK_OBJECT_BOOLEAN) ||
        (kind == REQ_INT64 && mp_obj_int64(o, &i)) || (kind == REQ_TEXT && mp_obj_str(o, &s, &n)))
        return true;
    req_arg_error(req, key);
    return false;
}

static int cmp_int64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

bool req_arg_ids(rtmd_request *req, const char *key, uint32_t max, bool allow_empty, int64_t **out, uint32_t *n)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY) {
        req_arg_error(req, key);
        return false;
    }
    uint32_t size = o->via.array.size;
    char ex[96];
    if (size == 0 && !allow_empty) {
        snprintf(ex, sizeof ex, "'%s' is empty", key);
        request_error(req, RTM_EC_EMPTY_PARAMETER, ex);
        return false;
    }
    if (size > max) {
        snprintf(ex, sizeof ex, "at most %u '%s' per call", max, key);
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, ex);
        return false;
    }
    int64_t *v = malloc((size ? (size_t)size : 1) * sizeof *v);
    if (!v) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return false;
    }
    for (uint32_t i = 0; i < size; i++) {
        if (!mp_obj_int64(&o->via.array.ptr[i], &v[i])) {
            free(v);
            snprintf(ex, sizeof ex, "'%s' must be integers", key);
            request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, ex);
            return false;
        }
    }
    qsort(v, size, sizeof *v, cmp_int64);
    uint32_t m = 0;
    for (uint32_t i = 0; i < size; i++)
        if (m == 0 || v[m - 1] != v[i])
            v[m++] = v[i];
    *out = v;
    *n = m;
    return true;
}

static int dispatch(rtmd_conn *c, const fpnn_packet *pkt, uint64_t oversized)
{
    if (pkt->mtype == FPNN_MT_ANSWER)
        return 0; /* answers to server quests (pings): arrival is what counts */
    rtmd_request *req = calloc(1, sizeof *req);
    if (!req)
        return -1;
    req->oversized = oversized;
    req->t_recv = lat_now();
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
        char name[RTM_LOG_STR_SIZE];
        LOG_DEBUG("conn %llu %s: unknown method \"%s\"", (unsigned long long)c->id, rtmd_gate_name(c->gate),
                  rtm_log_str(name, pkt->method, pkt->method_len));
        request_error(req, FPNN_EC_CORE_UNKNOWN_METHOD, "unknown method");
        return 0;
    }
    req->mflags = m->flags;
    if (m->flags & RTMD_M_OPEN) {
        m->handler(req);
        return 0;
    }
    rtmd_authorize_fn authorize = c->srv->methods->authorize[c->gate];
    if (!authorize) {
        request_error(req, RTM_EC_UNAUTHORIZED, "unauthorized");
        return 0;
    }
    req->handler = m->handler;
    if (authorize(req))
        request_authorized(req);
    return 0; /* refused and answered, or taken over by the authorizer */
}

int rtmd_dispatch_packet(rtmd_conn *c, const fpnn_packet *pkt)
{
    return dispatch(c, pkt, 0);
}

int rtmd_dispatch_oversized(rtmd_conn *c, const fpnn_packet *pkt, uint64_t size)
{
    return dispatch(c, pkt, size);
}

void request_authorized(rtmd_request *req)
{
    rtmd_translate_fn translate = req->srv->methods->translate[req->gate];
    if (translate)
        translate(req, req->handler);
    else
        req->handler(req);
}
