/* The method table and the request/answer API that every quest handler
 * uses. Later features register their methods here (methods_register) and
 * never touch the transports: a handler sees the decoded arguments and the
 * calling gate, and answers now or later (after a store commit). */
#ifndef RTMD_METHODS_H
#define RTMD_METHODS_H

#include "rtm/fpnn.h"
#include "server_state.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rtmd_request;
typedef void (*rtmd_handler)(struct rtmd_request *req);

typedef struct rtmd_request {
    rtmd_server *srv;
    rtmd_conn *conn;          /* referenced until the request is answered */
    rtmd_gate gate;
    /* Who is calling, set before the handler runs (except for RTMD_M_OPEN
     * methods): the project, and on the client gates the logged-in user. */
    rtmd_project *project;
    int64_t uid;
    bool twoway;
    uint8_t flag;             /* FPNN flag of the quest: answers use the same */
    uint32_t seq;
    char method[FPNN_MAX_METHOD + 1];
    msgpack_unpacked payload;
    const msgpack_object *args; /* the payload map */
    rtmd_handler handler;       /* the method's, kept for request_authorized */
    unsigned mflags;            /* the method's RTMD_M_* flags */
    uint64_t oversized;         /* a quest of this many bytes, over the limit: no payload
                                 * (rtmd_dispatch_oversized); 0 for every other */
    /* An answer given while the request is held waits here (request_hold). */
    uint8_t holds;
    bool answered;
    uint8_t held_status;
    uint32_t held_len;
    char *held_body;
    uint64_t t_recv;            /* lathist.h: when the quest was dispatched */
} rtmd_request;

/* Method flags. By default a method needs an identity: a logged-in
 * session on the client gates, a valid signature on the server gate. */
#define RTMD_M_OPEN 1u        /* callable before login / without signature */
#define RTMD_M_LOGIN 2u       /* a login (auth): its outcome is logged at info and counted */

typedef struct rtmd_method {
    const char *name;
    unsigned gates;           /* GATE_BIT mask of gates that accept it */
    rtmd_handler handler;
    unsigned flags;
} rtmd_method;

/* Who may call a method that is not RTMD_M_OPEN on a gate: returns true
 * with req->project (and on the client gates req->uid) set, or answers the
 * refusal itself and returns false. The modules that know callers provide
 * them (sign.c for the server gate, users.c for the client gates).
 * An authorizer that must wait (for the store) returns false without
 * answering, having taken the request over: once the caller is known it
 * calls request_authorized, or answers the refusal. */
typedef bool (*rtmd_authorize_fn)(rtmd_request *req);

/* The edge translation of a gate (string-id clients, strid.c): runs
 * instead of every method that is not RTMD_M_OPEN, after the authorizer.
 * It rewrites req->args if it must (for a string-id caller: string ids to
 * uids) and then calls handler(req), now or later; or answers the request
 * itself (a bad id). For every other caller it calls handler(req) at once. */
typedef void (*rtmd_translate_fn)(rtmd_request *req, rtmd_handler handler);

struct rtmd_methods *methods_new(void);
/* Sets the authorizer of the gates in the GATE_BIT mask. */
void methods_set_authorizer(struct rtmd_methods *m, unsigned gates, rtmd_authorize_fn fn);
/* Sets the edge translation of the gates in the GATE_BIT mask. */
void methods_set_translator(struct rtmd_methods *m, unsigned gates, rtmd_translate_fn fn);
void methods_free(struct rtmd_methods *m);
/* Adds n methods; a name already present is replaced. Returns 0 or -1. */
int methods_register(struct rtmd_methods *m, const rtmd_method *table, size_t n);
const rtmd_method *methods_find(const struct rtmd_methods *m, const char *name, size_t len);
/* Packs {name: [gate names]} of every registered method (for `*infos`). */
void methods_pack_list(const struct rtmd_methods *m, msgpack_packer *pk);

/* Every request is finished by exactly one of these; they free it. For a
 * oneway quest the answer is discarded. */
void request_answer(rtmd_request *req, const msgpack_sbuffer *body);
void request_answer_empty(rtmd_request *req);
void request_error(rtmd_request *req, int64_t code, const char *ex);

/* Holding: while a request is held, an answer given to it is kept (and
 * the request stays alive); it goes out when the last hold is released.
 * A signed request is held until its salt is durable (sign.c). */
void request_hold(rtmd_request *req);
void request_release(rtmd_request *req);

/* Runs the method of a request whose authorizer returned false while it
 * waited (see rtmd_authorize_fn): through the gate's translation, as if
 * the authorizer had returned true. */
void request_authorized(rtmd_request *req);

/* Answers {key: value}. */
void request_answer_bool(rtmd_request *req, const char *key, bool value);
/* Answers {key: [ids]}, the n ids in the order given (ids may be NULL when
 * n is 0). */
void request_answer_ids(rtmd_request *req, const char *key, const int64_t *ids, size_t n);

/* Argument helpers. Each reads one field of req->args; on failure it
 * answers the request (so the handler must not touch req again) and
 * returns false. The rule for a bad field, everywhere: missing or nil is
 * FPNN 10009 (FPNN_EC_PROTO_KEY_NOT_FOUND), present with another type is
 * 10010 (FPNN_EC_PROTO_TYPE_CONVERT). */

/* Answers the error of a missing or mistyped field by that rule (10009 if
 * args[key] is missing or nil, else 10010), ex "missing or invalid '<key>'",
 * for handlers that check a field of another kind themselves. */
void req_arg_error(rtmd_request *req, const char *key);
/* A required integer field (any msgpack integer form within int64). */
bool req_arg_int64(rtmd_request *req, const char *key, int64_t *out);
/* An optional field, checked and not read: true when it is absent, nil or
 * of its kind; else answers 10010 and returns false. */
enum req_kind { REQ_BOOL, REQ_INT64, REQ_TEXT /* str or bin */ };
bool req_arg_optional(rtmd_request *req, const char *key, enum req_kind kind);
/* A required array of integer ids: missing or nil is 10009; not an array,
 * or an element that is not an integer, 10010; an empty array 200033
 * (RTM_EC_EMPTY_PARAMETER) unless allow_empty; more than max elements
 * 200032 (RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS), ex naming the limit. On
 * success *out is a malloc'd array (also when *n is 0; the caller frees
 * it) of the *n distinct ids, sorted ascending: the caller's order and
 * repeats are not kept. Out of memory answers 200999. */
bool req_arg_ids(rtmd_request *req, const char *key, uint32_t max, bool allow_empty, int64_t **out, uint32_t *n);

/* The FPNN packet handler of the client and server gates (see
 * rtmd_packet_handler): decodes a quest, finds its method, checks the
 * caller (login or signature) and runs the handler. */
int rtmd_dispatch_packet(rtmd_conn *c, const fpnn_packet *pkt);
/* A quest over the gate's packet limit whose payload the transport skips
 * (the file gate: conn.c): dispatched with an empty payload and
 * req->oversized set to its size, so that its method answers it (files:
 * 200031) instead of the link closing unanswered. */
int rtmd_dispatch_oversized(rtmd_conn *c, const fpnn_packet *pkt, uint64_t size);

#endif
