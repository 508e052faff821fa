/* RealTimeCat (rtcat.h): the module's descriptor, start and exit. The
 * REST v0.4 API of sessions and tokens on the HTTP gate (/v0.4/...,
 * rest.c), the demo backend's three unauthenticated routes for the
 * project with rtcat_demo = 1 (demo_backend.c), and the token logins'
 * rights and kicks (logins.c), over a model of the rtcat_sessions and
 * rtcat_tokens tables mirrored in memory (model.c) that changes through
 * store writes (writes.c). What the files share is rtcat_internal.h. */
#include "rtcat_internal.h"

#include "log.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rtcat_enabled(const rtmd_project *p)
{
    return p && p->limits.rtcat_apikey[0] && p->limits.rtcat_secret[0];
}

static const rtmd_http_route demo_routes[] = {
    {"GET", "/sessions", rc_route_demo_sessions},
    {"GET", "/tokens/*", rc_route_demo_named_tokens},
    {"GET", "/*/tokens", rc_route_demo_session_tokens},
};

/* The demo backend's project: the one with rtcat_demo = 1, or, when the
 * configuration names no projects and demo_dir is set, the demo project of
 * the store (server.c derives its API key), as demo.c picks it. */
static int pick_demo(struct rtcat_state *st, rtmd_server *srv, char *err, size_t errlen)
{
    const rtmd_project *found = NULL;
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (!p->limits.rtcat_demo)
            continue;
        if (found) {
            snprintf(err, errlen, "rtcat_demo = 1 is set for projects %lld and %lld: at most one project",
                     (long long)found->pid, (long long)p->pid);
            return -1;
        }
        if (!rtcat_enabled(p)) {
            snprintf(err, errlen, "project %lld has rtcat_demo = 1 but no rtcat_apikey and rtcat_secret",
                     (long long)p->pid);
            return -1;
        }
        found = p;
    }
    if (!found && srv->cfg.nprojects == 0 && srv->nprojects == 1 && srv->cfg.demo_dir[0] &&
        rtcat_enabled(&srv->projects[0]))
        found = &srv->projects[0];
    st->demo = found ? rc_project_of(st, found->pid) : NULL;
    return 0;
}

static rc_project *entry_of(struct rtcat_state *st, const rtmd_project *p)
{
    for (size_t k = 0; k < st->nprojects; k++)
        if (st->projects[k].p == p)
            return &st->projects[k];
    return NULL;
}

/* Serves the API for p when it has a key (the configuration lets no two
 * projects share one), in the entry p had before if any (a removal, a key
 * taken away). Returns true when p was not served: its sessions and
 * tokens are then to be read from the store (rc_project_reload). */
static bool take_project(struct rtcat_state *st, const rtmd_project *p)
{
    if (!rtcat_enabled(p))
        return false;
    rc_project *rp = entry_of(st, p);
    if (!rp)
        rp = &st->projects[st->nprojects++];
    if (rp->on)
        return false;
    rp->p = p;
    rp->on = true;
    return true;
}

/* A project a reload adds: its API from then on, its sessions and tokens
 * read from the store (a pid served before keeps its data). The demo
 * backend is chosen at start. */
static int rtcat_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    struct rtcat_state *st = rc_state(srv);
    if (p->limits.rtcat_demo) {
        snprintf(err, errlen, "rtcat_demo = 1 takes a restart (the demo backend is chosen at start)");
        return -1;
    }
    if (!take_project(st, p))
        return 0;
    rc_cluster_init(srv);
    rc_project_reload(srv, p->pid);
    return 0;
}

static void rtcat_project_removed(rtmd_server *srv, rtmd_project *p)
{
    rc_project *rp = entry_of(rc_state(srv), p);
    if (rp)
        rp->on = false;
}

/* SIGHUP: a running project given a key serves the API from then on, with
 * the sessions and tokens the store has of it; one whose key went no
 * longer does (nor do its token logins). A new key or secret is read
 * where it is checked. */
static int rtcat_reload(rtmd_server *srv, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct rtcat_state *st = rc_state(srv);
    for (size_t i = 0; st && i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        rc_project *rp = entry_of(st, p);
        if (p->removed)
            continue;
        if (!rtcat_enabled(p) && rp && rp->on) {
            rp->on = false;
            LOG_INFO("rtcat: project %lld no longer serves the RealTimeCat API", (long long)p->pid);
        } else if (take_project(st, p)) {
            LOG_INFO("rtcat: project %lld serves the RealTimeCat API", (long long)p->pid);
            rc_cluster_init(srv);
            rc_project_reload(srv, p->pid);
        }
    }
    return 0;
}

static int rtcat_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct rtcat_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->srv = srv;
    srv->svc->rtcat = st;
    uv_timer_init(srv->loop, &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, rc_on_tick, 1000, 1000);
    st->last_purge_ms = uv_now(srv->loop);
    st->projects = calloc(RTMD_MAX_PROJECTS, sizeof *st->projects);
    if (!st->projects) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < srv->nprojects; i++)
        take_project(st, &srv->projects[i]);
    if (pick_demo(st, srv, err, errlen) != 0)
        return -1;
    if (st->demo && http_register(srv->http, demo_routes, sizeof demo_routes / sizeof demo_routes[0]) != 0) {
        snprintf(err, errlen, "rtcat: too many HTTP routes");
        return -1;
    }
    if (st->nprojects) {
        rc_load l = {st, rc_now_us(), 0, 0};
        if (module_load(srv, rc_load_all, &l) != DB_OK) {
            snprintf(err, errlen, "cannot load RealTimeCat sessions and tokens from the store");
            return -1;
        }
        LOG_INFO("rtcat: %zu sessions and %zu tokens loaded%s", l.sessions, l.tokens,
                 st->demo ? "; demo backend at /sessions, /:sessionId/tokens, /tokens/:sessionName" : "");
        rc_cluster_init(srv);
    }
    return 0;
}

static void rtcat_free(rtmd_server *srv)
{
    struct rtcat_state *st = rc_state(srv);
    if (!st)
        return;
    for (size_t i = 0; i < st->nprojects; i++)
        while (st->projects[i].first)
            rc_session_free(st, st->projects[i].first);
    for (size_t i = 0; i < st->logins.cap; i++)
        free(st->logins.slots[i].value);
    pairmap_free(&st->logins);
    pairmap_free(&st->sessions);
    pairmap_free(&st->tokens);
    free(st->projects);
    srv->svc->rtcat = NULL;
    if (rtmd_timer_release(&st->timer, st->timer_closed))
        free(st);
}

static void rtcat_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct rtcat_state *st = srv->svc->rtcat;
    prom_metric(out, "rtmd_rtcat_sessions", "gauge", "RealTimeCat sessions held in memory.",
                st ? st->sessions.count : 0);
    prom_metric(out, "rtmd_rtcat_tokens", "gauge", "RealTimeCat tokens held in memory.", st ? st->tokens.count : 0);
}

static const rtmd_http_route rtcat_routes[] = {
    {NULL, "/v0.4/*", rc_route_api},
};

static const rtmd_observer rtcat_observers[] = {
    {RTMD_EV_SESSION_END, rc_on_session_end},
};

const rtmd_module rtcat_module = {
    .name = "rtcat",
    .init = rtcat_init,
    .free = rtcat_free,
    .reload = rtcat_reload,
    .project_added = rtcat_project_added,
    .project_removed = rtcat_project_removed,
    .metrics = rtcat_metrics,
    RTMD_MODULE_ROUTES(rtcat_routes),
    RTMD_MODULE_OBSERVERS(rtcat_observers),
};
