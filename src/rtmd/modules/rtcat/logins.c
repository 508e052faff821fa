/* RealTimeCat token logins on the client gate (rtcat.h): checking a
 * token at auth (auth.c), the rights of a connection logged in with one
 * (rtcat_gate, called by strid.c's edge hook: its session's room only,
 * sending only with a pub token), forgetting it when its session ends,
 * and kicking the logins of a deleted session or token. */
#include "rtcat_internal.h"

#include "log.h"
#include "payload.h"
#include "rtm_errors.h"
#include "users.h"

#include <stdlib.h>
#include <string.h>

int rtcat_token_check(rtmd_server *srv, int64_t pid, const char *token, size_t len, rtcat_grant *out)
{
    struct rtcat_state *st = rc_state(srv);
    rc_project *rp = rc_project_of(st, pid);
    rc_token *t = rp ? rc_token_get(st, rp, token, len) : NULL;
    if (!t)
        return RTCAT_TOKEN_INVALID;
    if (rc_token_expired(t, rc_now_us()))
        return RTCAT_TOKEN_EXPIRED;
    memcpy(out->token, t->o.uuid, sizeof out->token);
    memcpy(out->session, t->s->o.uuid, sizeof out->session);
    out->pub = t->o.type == 0;
    return RTCAT_TOKEN_OK;
}

int rtcat_bind(rtmd_server *srv, rtmd_conn *c, int64_t pid, int64_t uid, const rtcat_grant *g)
{
    struct rtcat_state *st = rc_state(srv);
    rc_login *l = st ? malloc(sizeof *l) : NULL;
    if (!l)
        return -1;
    *l = (rc_login){.pid = pid, .uid = uid, .pub = g->pub};
    memcpy(l->token, g->token, sizeof l->token);
    memcpy(l->session, g->session, sizeof l->session);
    rc_login *old = pairmap_get(&st->logins, (uint64_t)(uintptr_t)c, 0);
    if (pairmap_put(&st->logins, (uint64_t)(uintptr_t)c, 0, l) != 0) {
        free(l);
        return -1;
    }
    free(old);
    return 0;
}

bool rtcat_gate(rtmd_request *req)
{
    struct rtcat_state *st = rc_state(req->srv);
    const rc_login *l = st ? pairmap_get(&st->logins, (uint64_t)(uintptr_t)req->conn, 0) : NULL;
    if (!l)
        return true;
    bool send = strcmp(req->method, "sendroommsg") == 0;
    if (!send && strcmp(req->method, "enterroom") != 0 && strcmp(req->method, "leaveroom") != 0 &&
        strcmp(req->method, "getroommsg") != 0) {
        request_error(req, RTM_EC_FORBIDDEN_METHOD, "a RealTimeCat token may not call this method");
        return false;
    }
    const msgpack_object *rid = mp_map_get(req->args, "rid");
    if (!rid || rid->type != MSGPACK_OBJECT_STR || rid->via.str.size != RTCAT_UUID_LEN ||
        memcmp(rid->via.str.ptr, l->session, RTCAT_UUID_LEN) != 0) {
        request_error(req, RTM_EC_PERMISSION_DENIED, "a RealTimeCat token may use only its session's room");
        return false;
    }
    if (send && !l->pub) {
        request_error(req, RTM_EC_PERMISSION_DENIED, "sub token: receive only");
        return false;
    }
    return true;
}

void rc_on_session_end(rtmd_server *srv, const rtmd_event *ev)
{
    struct rtcat_state *st = rc_state(srv);
    if (st && ev->conn)
        free(pairmap_del(&st->logins, (uint64_t)(uintptr_t)ev->conn, 0));
}

/* ---- kicks ---- */

/* Kicks the token logins of the session (token NULL) or of one token. */
void rc_kick_logins(struct rtcat_state *st, const char *session, const char *token, const char *reason)
{
    size_t n = 0;
    for (size_t i = 0; i < st->logins.cap; i++) {
        const rc_login *l = st->logins.slots[i].value;
        if (l && (token ? strcmp(l->token, token) == 0 : strcmp(l->session, session) == 0))
            n++;
    }
    if (!n)
        return;
    int64_t(*who)[2] = malloc(n * sizeof *who);
    if (!who) {
        LOG_ERROR("rtcat: out of memory: connections of a deleted %s stay", token ? "token" : "session");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < st->logins.cap && k < n; i++) {
        const rc_login *l = st->logins.slots[i].value;
        if (l && (token ? strcmp(l->token, token) == 0 : strcmp(l->session, session) == 0)) {
            who[k][0] = l->pid;
            who[k][1] = l->uid;
            k++;
        }
    }
    for (size_t i = 0; i < k; i++)
        users_kickout_why(st->srv, who[i][0], who[i][1], NULL, reason);
    free(who);
}

