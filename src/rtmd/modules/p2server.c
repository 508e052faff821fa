/* P2Server: a client has rtmd POST its messages to the app server and
 * gets the app server's reply back (the RTS web SDK's setServerParams,
 * sendServerMessage, sendServerBinaryMessage and onServerMessageSendResult).
 *
 *   setserverparams {signature, url} -> {}: stores the app server's URL and
 *                   the signature the app server checks, for this
 *                   connection; the URL must be allowed by the project's
 *                   p2server_allow (200021), and an empty list turns
 *                   P2Server off (200060).
 *   sendservermsg   {mid, msg} -> {status, body}: POSTs a JSON object (see
 *                   docs/rtm-methods.md) to the stored URL through
 *                   outbound.c and answers with the app server's HTTP
 *                   status and reply body once it replied; its failures
 *                   have codes of their own (200091-200094).
 *
 * State: per connection (keyed by connection id, dropped when it closes)
 * the signature, the URL and the requests waiting for the app server;
 * those are cancelled when their connection closes. Per project the parsed
 * allowlist, built at start (a bad entry stops rtmd). */
#include "log.h"
#include "methods.h"
#include "module.h"
#include "outbound.h"
#include "pairmap.h"
#include "payload.h"
#include "rtm_errors.h"
#include "users.h"
#include "utf8.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P2SERVER_MAX_SIGNATURE 1024       /* bytes of signature */
#define P2SERVER_MAX_MSG (64 * 1024)      /* bytes of msg, and of the body answered */

typedef struct pending pending;

typedef struct conn_params {
    char *signature;
    size_t signature_len;
    char *url;
    size_t url_len;
    pending *pending; /* requests waiting for the app server */
} conn_params;

struct pending {
    rtmd_server *srv;
    rtmd_request *req;
    conn_params *cp;
    uint64_t conn_id;
    int64_t id; /* outbound's */
    pending *prev, *next;
};

struct p2server_state {
    pairmap params;                /* (0, connection id) -> conn_params */
    outbound_allowlist **allow;    /* per project, parallel to srv->projects' slots; NULL = off */
    size_t nprojects;
};

static struct p2server_state *state(rtmd_server *srv)
{
    return srv->svc->p2server;
}

static const outbound_allowlist *project_allowlist(rtmd_request *req)
{
    struct p2server_state *s = state(req->srv);
    size_t i = (size_t)(req->project - req->srv->projects);
    return i < s->nprojects ? s->allow[i] : NULL;
}

/* A required str or bin field of at most max bytes that is valid UTF-8. */
static bool arg_text(rtmd_request *req, const char *key, size_t max, const char **p, size_t *n)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (!o || !mp_obj_str(o, p, n) || !rtm_utf8_valid(*p, *n) || memchr(*p, '\0', *n)) {
        req_arg_error(req, key);
        return false;
    }
    if (*n > max) {
        char ex[96];
        snprintf(ex, sizeof ex, "'%s' is over %zu bytes", key, max);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, ex);
        return false;
    }
    return true;
}

static void params_free(conn_params *cp)
{
    free(cp->signature);
    free(cp->url);
    free(cp);
}

/* ---- setserverparams ---- */

static void method_setserverparams(rtmd_request *req)
{
    const outbound_allowlist *allow = project_allowlist(req);
    const char *sig, *url;
    size_t siglen, urllen;
    if (!arg_text(req, "signature", P2SERVER_MAX_SIGNATURE, &sig, &siglen) ||
        !arg_text(req, "url", OUTBOUND_MAX_URL, &url, &urllen))
        return;
    if (!allow) {
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "P2Server is off for this project (no p2server_allow)");
        return;
    }
    char why[128], ex[160];
    if (!outbound_url_allowed(allow, url, urllen, why, sizeof why)) {
        snprintf(ex, sizeof ex, "url not allowed: %s", why);
        request_error(req, RTM_EC_PERMISSION_DENIED, ex);
        return;
    }
    struct p2server_state *s = state(req->srv);
    char *nsig = malloc(siglen + 1), *nurl = malloc(urllen + 1);
    conn_params *cp = pairmap_get(&s->params, 0, req->conn->id);
    bool fresh = !cp;
    if (fresh)
        cp = calloc(1, sizeof *cp);
    if (!nsig || !nurl || !cp || (fresh && pairmap_put(&s->params, 0, req->conn->id, cp) != 0)) {
        free(nsig);
        free(nurl);
        if (fresh)
            free(cp);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    memcpy(nsig, sig, siglen);
    nsig[siglen] = '\0';
    memcpy(nurl, url, urllen);
    nurl[urllen] = '\0';
    free(cp->signature);
    free(cp->url);
    cp->signature = nsig;
    cp->signature_len = siglen;
    cp->url = nurl;
    cp->url_len = urllen;
    request_answer_empty(req);
}

/* ---- sendservermsg ---- */

static void pending_unlink(pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->cp->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_app_server_reply(void *arg, const outbound_reply *r)
{
    pending *p = arg;
    rtmd_request *req = p->req;
    pending_unlink(p);
    free(p);
    switch (r->result) {
    case OUTBOUND_OK: {
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_int(&pk, "status", r->status);
        mp_pack_cstr(&pk, "body");
        if (rtm_utf8_valid(r->body, r->len)) {
            msgpack_pack_str(&pk, r->len);
            msgpack_pack_str_body(&pk, r->body, r->len);
        } else {
            msgpack_pack_bin(&pk, r->len);
            msgpack_pack_bin_body(&pk, r->body, r->len);
        }
        request_answer(req, &body);
        msgpack_sbuffer_destroy(&body);
        return;
    }
    case OUTBOUND_TIMEOUT:
        request_error(req, RTM_EC_APP_SERVER_TIMEOUT, r->error);
        return;
    case OUTBOUND_REFUSED:
    case OUTBOUND_CONNECT_FAILED:
        request_error(req, RTM_EC_APP_SERVER_UNREACHABLE, r->error);
        return;
    case OUTBOUND_TOO_LARGE:
        request_error(req, RTM_EC_APP_SERVER_REPLY_TOO_LARGE, r->error);
        return;
    case OUTBOUND_FAILED:
        break;
    }
    char ex[200];
    snprintf(ex, sizeof ex, "the POST to the app server failed: %s", r->error ? r->error : "unknown");
    request_error(req, RTM_EC_APP_SERVER_FAILED, ex);
}

/* The JSON the app server gets (docs/rtm-methods.md), or NULL. */
static char *post_body(rtmd_request *req, const conn_params *cp, int64_t mid, const char *msg, size_t len, bool text)
{
    /* The app id and user id as the RTS SDK knows them: the project's
     * app_id and the session's string id, where it has them. */
    char pid[24], uid[24];
    snprintf(pid, sizeof pid, "%lld", (long long)req->project->pid);
    snprintf(uid, sizeof uid, "%lld", (long long)req->uid);
    const char *app_id = req->project->limits.app_id[0] ? req->project->limits.app_id : pid;
    const rtmd_session *session = users_session(req->conn);
    const char *user_id = session && session->string_id ? session->string_id : uid;
    const char *business_id = session && session->business_id ? session->business_id : "";
    json_t *message;
    if (text) {
        message = json_stringn(msg, len);
    } else {
        char *b64 = malloc(4 * ((len + 2) / 3) + 1);
        if (!b64)
            return NULL;
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)msg, (int)len);
        message = json_string(b64);
        free(b64);
    }
    json_t *o = json_object();
    char *out = NULL;
    if (message && o && json_object_set_new(o, "appId", json_string(app_id)) == 0 &&
        json_object_set_new(o, "userId", json_string(user_id)) == 0 &&
        json_object_set_new(o, "businessId", json_string(business_id)) == 0 &&
        json_object_set_new(o, "signature", json_stringn(cp->signature, cp->signature_len)) == 0 &&
        json_object_set_new(o, "mid", json_integer(mid)) == 0 &&
        json_object_set_new(o, "type", json_string(text ? "text" : "binary")) == 0 &&
        json_object_set(o, "message", message) == 0)
        out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(message);
    json_decref(o);
    return out;
}

static void method_sendservermsg(rtmd_request *req)
{
    int64_t mid;
    if (!req_arg_int64(req, "mid", &mid))
        return;
    const msgpack_object *m = mp_map_get(req->args, "msg");
    const char *msg;
    size_t len;
    if (!m || !mp_obj_str(m, &msg, &len)) {
        req_arg_error(req, "msg");
        return;
    }
    if (len > P2SERVER_MAX_MSG) {
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "msg is over 65536 bytes");
        return;
    }
    const outbound_allowlist *allow = project_allowlist(req);
    if (!allow) {
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "P2Server is off for this project (no p2server_allow)");
        return;
    }
    struct p2server_state *s = state(req->srv);
    conn_params *cp = pairmap_get(&s->params, 0, req->conn->id);
    if (!cp) {
        request_error(req, RTM_EC_P2SERVER_NOT_SET, "call setserverparams first");
        return;
    }
    /* A str that is not UTF-8 cannot be JSON text: it goes as binary. */
    bool text = m->type == MSGPACK_OBJECT_STR && rtm_utf8_valid(msg, len);
    char *body = post_body(req, cp, mid, msg, len, text);
    pending *p = calloc(1, sizeof *p);
    if (!body || !p) {
        free(body);
        free(p);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    const rtmd_project_config *lim = &req->project->limits;
    outbound_post_args a = {
        .pid = req->project->pid,
        .uid = req->uid,
        .allow = allow,
        .url = cp->url,
        .url_len = cp->url_len,
        .content_type = "application/json",
        .body = body,
        .len = strlen(body),
        .timeout_ms = lim->p2server_timeout_ms,
        .max_project = lim->p2server_max_inflight,
        .max_user = lim->p2server_max_inflight_per_user,
    };
    int64_t id = outbound_post(req->srv, &a, on_app_server_reply, p);
    free(body);
    if (id <= 0) {
        free(p);
        switch (id) {
        case OUTBOUND_E_PROJECT_BUSY:
            request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "too many P2Server messages of the project in flight");
            return;
        case OUTBOUND_E_USER_BUSY:
            request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "too many P2Server messages of the user in flight");
            return;
        case OUTBOUND_E_NOT_ALLOWED:
            request_error(req, RTM_EC_PERMISSION_DENIED, "url not allowed");
            return;
        case OUTBOUND_E_TOO_LARGE:
            request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "request body too large");
            return;
        default:
            request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot start the POST");
            return;
        }
    }
    p->srv = req->srv;
    p->req = req;
    p->cp = cp;
    p->conn_id = req->conn->id;
    p->id = id;
    p->next = cp->pending;
    if (cp->pending)
        cp->pending->prev = p;
    cp->pending = p;
}

/* Cancels the POSTs of cp; their requests are answered into a closed
 * connection (dropped). */
static void cancel_pending(rtmd_server *srv, conn_params *cp)
{
    while (cp->pending) {
        pending *p = cp->pending;
        cp->pending = p->next;
        outbound_cancel(srv, p->id);
        request_error(p->req, FPNN_EC_CORE_CONNECTION_CLOSED, "connection closed");
        free(p);
    }
}

static void on_conn_closed(rtmd_server *srv, const rtmd_event *ev)
{
    struct p2server_state *s = state(srv);
    if (!s || ev->conn->gate == GATE_SERVER_TCP)
        return;
    conn_params *cp = pairmap_del(&s->params, 0, ev->conn->id);
    if (!cp)
        return;
    if (cp->pending)
        LOG_DEBUG("p2server: connection %llu closed, cancelling its POSTs", (unsigned long long)ev->conn->id);
    cancel_pending(srv, cp);
    params_free(cp);
}

/* ---- module life cycle ---- */

/* The allowlist of p's slot from its p2server_allow (a slot the same pid
 * had before a removal gets the list configured now). */
static int p2server_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    outbound_allowlist **allow = &state(srv)->allow[p - srv->projects];
    outbound_allowlist_free(*allow);
    *allow = NULL;
    char why[300];
    if (outbound_allowlist_parse(p->limits.p2server_allow, allow, why, sizeof why) != 0) {
        snprintf(err, errlen, "project %lld: p2server_allow: %s", (long long)p->pid, why);
        return -1;
    }
    return 0;
}

/* SIGHUP: a running project's p2server_allow again (requests check it
 * when they start); one that does not parse keeps the list it had. */
static int reload_project(rtmd_server *srv, rtmd_project *p, char *why, size_t whylen)
{
    outbound_allowlist *next = NULL;
    char msg[300];
    if (outbound_allowlist_parse(p->limits.p2server_allow, &next, msg, sizeof msg) != 0) {
        snprintf(why, whylen, "p2server_allow: %s", msg);
        LOG_ERROR("p2server: project %lld: keeping its URLs: %s", (long long)p->pid, why);
        return -1;
    }
    outbound_allowlist **allow = &state(srv)->allow[p - srv->projects];
    outbound_allowlist_free(*allow);
    *allow = next;
    return 0;
}

static int p2server_reload(rtmd_server *srv, char *err, size_t errlen)
{
    return state(srv) ? module_reload_projects(srv, reload_project, err, errlen) : 0;
}

static int p2server_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct p2server_state *s = calloc(1, sizeof *s);
    if (!s || !(s->allow = calloc(RTMD_MAX_PROJECTS, sizeof *s->allow))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->p2server = s;
    s->nprojects = RTMD_MAX_PROJECTS;
    for (size_t i = 0; i < srv->nprojects; i++)
        if (p2server_project_added(srv, &srv->projects[i], err, errlen) != 0)
            return -1;
    return 0;
}

static void p2server_free(rtmd_server *srv)
{
    struct p2server_state *s = srv->svc->p2server;
    if (!s)
        return;
    for (size_t i = 0; i < s->params.cap; i++) {
        conn_params *cp = s->params.slots[i].value;
        if (cp) {
            cancel_pending(srv, cp);
            params_free(cp);
        }
    }
    pairmap_free(&s->params);
    for (size_t i = 0; i < s->nprojects; i++)
        outbound_allowlist_free(s->allow[i]);
    free(s->allow);
    free(s);
    srv->svc->p2server = NULL;
}

static void p2server_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct p2server_state *s = srv->svc->p2server;
    if (s)
        prom_metric(out, "rtmd_p2server_connections", "gauge",
                    "Client connections that set P2Server parameters (setserverparams).", s->params.count);
}

static const rtmd_method p2server_methods[] = {
    {"setserverparams", GATES_CLIENT, method_setserverparams, 0},
    {"sendservermsg", GATES_CLIENT, method_sendservermsg, 0},
};

static const rtmd_observer p2server_observers[] = {{RTMD_EV_CONN_CLOSED, on_conn_closed}};

const rtmd_module p2server_module = {
    .name = "p2server",
    .init = p2server_init,
    .reload = p2server_reload,
    .project_added = p2server_project_added,
    .free = p2server_free,
    .metrics = p2server_metrics,
    RTMD_MODULE_METHODS(p2server_methods),
    RTMD_MODULE_OBSERVERS(p2server_observers),
};
