/* The demo backend of RealTimeCat: three unauthenticated routes that make
 * sessions and tokens for the one project with rtcat_demo = 1 (or the
 * store's demo project alone, rtcat.c picks it): GET /sessions,
 * GET /:sessionId/tokens and GET /tokens/:sessionName. rtcat.c registers
 * them; the creations are writes.c's. */
#include "rtcat_internal.h"

#include "utf8.h"

#include <string.h>

/* The demo backend's project, while it serves the API (a reload may take
 * its key away or remove it). */
static rc_project *demo_project(rtmd_conn *c)
{
    struct rtcat_state *st = rc_state(c->srv);
    return st && st->demo && st->demo->on ? st->demo : NULL;
}

/* GET /sessions: a new session labelled "demo". */
void rc_route_demo_sessions(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    if (!rp) {
        rc_send_error(c, req, NULL, 404, "not_found", "no such resource");
        return;
    }
    rc_fields f = {.label = "demo"};
    rc_create_session(c, req, rp, &f, 200, NULL);
}

/* GET /:sessionId/tokens: a new pub token in that session. */
void rc_route_demo_session_tokens(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    const char *id = req->path + 1, *slash = strchr(id, '/');
    rc_session *s = rp && slash ? rc_session_get(rc_state(c->srv), rp, id, (size_t)(slash - id)) : NULL;
    if (!s || rc_obj_expired(&s->o, rc_now_us())) {
        rc_send_error(c, req, NULL, 404, "not_found", rp ? "no such session" : "no such resource");
        return;
    }
    rc_fields f = {0};
    rc_create_tokens(c, req, rp, s, &f, 200);
}

/* GET /tokens/:sessionName: a new pub token in the oldest live session
 * labelled sessionName, made when there is none. */
void rc_route_demo_named_tokens(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    if (!rp) {
        rc_send_error(c, req, NULL, 404, "not_found", "no such resource");
        return;
    }
    const char *raw = req->path + strlen("/tokens/");
    char name[RC_LABEL_MAX + 1];
    long n = http_url_decode(raw, strlen(raw), name, sizeof name);
    if (n <= 0 || strchr(name, '/') || !rtm_utf8_valid(name, (size_t)n)) {
        rc_bad_param(c, req, "sessionName: 1 to 255 bytes of UTF-8");
        return;
    }
    int64_t now = rc_now_us();
    rc_fields none = {0};
    for (rc_session *s = rp->first; s; s = s->next)
        if (!rc_obj_expired(&s->o, now) && s->o.label && strcmp(s->o.label, name) == 0) {
            rc_create_tokens(c, req, rp, s, &none, 200);
            return;
        }
    rc_fields f = {.label = name};
    rc_create_session(c, req, rp, &f, 200, &none);
}

