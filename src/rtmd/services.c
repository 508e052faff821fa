/* Starting and stopping the service modules (see services.h). */
#include "services.h"

#include "log.h"
#include "methods.h"

#include <stdio.h>
#include <stdlib.h>

/* Every service module, in start order. */
extern const rtmd_module builtin_module;
extern const rtmd_module users_module;
extern const rtmd_module identity_module;
extern const rtmd_module sign_module;
extern const rtmd_module auth_module;
extern const rtmd_module bans_module;
extern const rtmd_module groups_module;
extern const rtmd_module friends_module;
extern const rtmd_module rooms_module;
extern const rtmd_module listen_module;
extern const rtmd_module quota_module;
extern const rtmd_module moderation_module;
extern const rtmd_module messages_module;
extern const rtmd_module history_module;
extern const rtmd_module info_module;
extern const rtmd_module compat_module;
extern const rtmd_module files_module;
extern const rtmd_module unavailable_module;
extern const rtmd_module unsupported_module;
extern const rtmd_module userdata_module;
extern const rtmd_module devices_module;
extern const rtmd_module history_admin_module;
extern const rtmd_module rtstoken_module;
extern const rtmd_module outbound_module;
extern const rtmd_module p2server_module;
extern const rtmd_module translate_module;
extern const rtmd_module strid_module;
extern const rtmd_module demo_module;
extern const rtmd_module admin_module;
extern const rtmd_module rtcat_module;
extern const rtmd_module cluster_module;
static const rtmd_module *const modules[] = {
    &builtin_module,  /* ping, bye, *echo, *infos */
    &identity_module, /* first: the others may resolve string ids */
    &sign_module,
    &cluster_module, /* redis_url: presence and records across nodes (modules/cluster/); before its users */
    &auth_module,    /* after cluster: getattrs and kickout {ce} records (cluster_on_record) */
    &bans_module,
    &groups_module,
    &friends_module,
    &rooms_module,
    &listen_module,
    &quota_module,
    &moderation_module, /* sensitive words: profanity, tcheck; messages.c filters chat through it */
    &messages_module,
    &history_module,
    &history_admin_module, /* admin clean-up of stored messages, editmsg, sessions */
    &info_module,
    &userdata_module, /* per-user key-value data */
    &devices_module,  /* push device tokens and options */
    &rtstoken_module, /* RTS access tokens: getrtstoken */
    &outbound_module, /* outgoing HTTP (libcurl on the loop), for p2server and later webhooks */
    &p2server_module, /* setserverparams, sendservermsg: POSTs to the app server */
    &translate_module, /* setlang, translate: a LibreTranslate-API server through outbound */
    &strid_module,    /* string-id clients: ids translated at the edge, getonlinestatus */
    &demo_module,     /* the demo web pages at /demo/ (demo_dir, demo = 1) */
    &admin_module,    /* the admin page at /admin/ and its API (admin_token, admin_dir) */
    &rtcat_module,    /* RealTimeCat REST (/v0.4/), its demo backend, token logins' rights */
    &compat_module,      /* which, adddebuglog: what older clients send */
    &files_module,       /* filetoken, the file gate's uploads, stored files and their downloads */
    &unavailable_module, /* media checks, speech to text: 200060 until their issue */
    &unsupported_module, /* RTC rooms, IM library (imserver_*): 200060, not offered */
    &users_module, /* last: freed first, before the state its users point into */
};
#define NMODULES (sizeof modules / sizeof modules[0])

static int start_module(rtmd_server *srv, const rtmd_module *m, char *err, size_t errlen)
{
    if (m->init && m->init(srv, err, errlen) != 0)
        return -1;
    if (m->authorize)
        methods_set_authorizer(srv->methods, m->authorizes, m->authorize);
    if (m->translate)
        methods_set_translator(srv->methods, m->translates, m->translate);
    if (m->nmethods && methods_register(srv->methods, m->methods, m->nmethods) != 0) {
        snprintf(err, errlen, "module %s: cannot register its methods (a name too long, or the table full)", m->name);
        return -1;
    }
    if (m->nroutes && http_register(srv->http, m->routes, m->nroutes) != 0) {
        snprintf(err, errlen, "module %s: too many HTTP routes", m->name);
        return -1;
    }
    for (size_t i = 0; i < m->nobservers; i++)
        if (events_subscribe(&srv->net.events, m->observers[i].kind, m->observers[i].fn) != 0) {
            snprintf(err, errlen, "module %s: too many observers of one event", m->name);
            return -1;
        }
    return 0;
}

int services_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc = calloc(1, sizeof *srv->svc);
    if (!srv->svc) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < NMODULES; i++)
        if (start_module(srv, modules[i], err, errlen) != 0)
            return -1;
    return 0;
}

void services_free(rtmd_server *srv)
{
    if (!srv->svc)
        return;
    for (size_t i = NMODULES; i-- > 0;)
        if (modules[i]->free)
            modules[i]->free(srv);
    free(srv->svc);
    srv->svc = NULL;
}

int services_reload(rtmd_server *srv)
{
    int failed = 0;
    if (!srv->svc)
        return 0;
    for (size_t i = 0; i < NMODULES; i++) {
        char err[512] = "";
        if (modules[i]->reload && modules[i]->reload(srv, err, sizeof err) != 0) {
            LOG_ERROR("SIGHUP: module %s kept what it had: %s", modules[i]->name, err);
            failed++;
        }
    }
    return failed;
}

void services_project_removed(rtmd_server *srv, rtmd_project *p)
{
    for (size_t i = NMODULES; srv->svc && i-- > 0;)
        if (modules[i]->project_removed)
            modules[i]->project_removed(srv, p);
}

int services_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    for (size_t i = 0; srv->svc && i < NMODULES; i++) {
        if (!modules[i]->project_added || modules[i]->project_added(srv, p, err, errlen) == 0)
            continue;
        p->removed = true;
        while (i-- > 0)
            if (modules[i]->project_removed)
                modules[i]->project_removed(srv, p);
        return -1;
    }
    return 0;
}

void services_metrics(const rtmd_server *srv, prom_out *out)
{
    if (!srv->svc)
        return;
    for (size_t i = 0; i < NMODULES; i++)
        if (modules[i]->metrics)
            modules[i]->metrics(srv, out);
}
