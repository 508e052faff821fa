/* The demo web pages: with the global setting demo_dir (a directory) and
 * one project with demo = 1, rtmd loads the files directly in demo_dir and
 * in its sub-directories (one level: demo_dir/<dir>/<name>) into memory at
 * start and serves them on the HTTP gate at /demo/<name> and
 * /demo/<dir>/<name> (/demo/<dir>/ is that directory's index.html),
 * with /demo/config.json (what the page needs to reach the WebSocket gate)
 * and /demo/token?user=ID (an RTS login token for that user of the demo
 * project, minted without any authentication: a demo, off by default).
 * Off (no demo_dir, or no project with demo = 1), /demo answers 404 like
 * any unknown path. Requests never touch the file system: a name is looked
 * up among the files loaded at start, so no path can reach anything else.
 * Owns the choice of the demo project; the files are loaded and served by
 * dispatch/static_files.c. */
#include "clock.h"
#include "http.h"
#include "identity.h"
#include "log.h"
#include "module.h"
#include "rtcat.h"
#include "rtstoken.h"
#include "static_files.h"

#include "accesstoken.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lifetime of a token of /demo/token. */
#define DEMO_TOKEN_TTL 3600

/* What every file of the page is sent with. The page loads its script, its
 * style and the SDK from here and talks to the WebSocket gate of any host
 * (the page builds the endpoint from its own host name); the call page
 * plays camera streams (media from the page itself, blob: and
 * mediastream:). WebRTC's peer connections are not governed by CSP. */
#define DEMO_CSP                                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: " \
    "mediastream:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define DEMO_HEADERS                                                                                                 \
    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: " DEMO_CSP "\r\n"
#define DEMO_JSON_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

typedef struct demo_state {
    const rtmd_project *project; /* NULL: the demo is off */
    static_files files;
} demo_state;

/* The project the demo logs in to: the one with demo = 1 (at most one, with
 * an app_id). When the configuration names no projects, rtmd runs the
 * demo project of the store alone (server.c, with derived RTS keys): that
 * one, so that demo_dir alone turns the demo on there. */
static int pick_project(rtmd_server *srv, const rtmd_project **out, char *err, size_t errlen)
{
    const rtmd_project *found = NULL;
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (!p->limits.demo)
            continue;
        if (found) {
            snprintf(err, errlen, "demo = 1 is set for projects %lld and %lld: at most one project may run the demo",
                     (long long)found->pid, (long long)p->pid);
            return -1;
        }
        if (p->limits.app_id[0] == '\0') {
            snprintf(err, errlen, "project %lld has demo = 1 but no app_id: the demo logs in with RTS tokens",
                     (long long)p->pid);
            return -1;
        }
        found = p;
    }
    if (!found && srv->cfg.nprojects == 0 && srv->nprojects == 1 && srv->projects[0].limits.app_id[0])
        found = &srv->projects[0];
    *out = found;
    return 0;
}

static int demo_init(rtmd_server *srv, char *err, size_t errlen)
{
    demo_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->demo = st;
    const rtmd_project *p = NULL;
    if (pick_project(srv, &p, err, errlen) != 0)
        return -1;
    if (srv->cfg.demo_dir[0] == '\0')
        return 0;
    if (!p) {
        LOG_WARN("demo_dir is set but no project has demo = 1: the demo pages are off");
        return 0;
    }
    if (static_files_load(&st->files, "demo_dir", srv->cfg.demo_dir, err, errlen) != 0)
        return -1;
    if (!static_files_find(&st->files, "index.html")) {
        snprintf(err, errlen, "demo_dir %s: no index.html", srv->cfg.demo_dir);
        return -1;
    }
    st->project = p;
    LOG_INFO("demo pages of project %lld at /demo/ (%zu files from %s)", (long long)p->pid, st->files.n,
             srv->cfg.demo_dir);
    return 0;
}

static void demo_free(rtmd_server *srv)
{
    demo_state *st = srv->svc->demo;
    if (!st)
        return;
    static_files_free(&st->files);
    free(st);
    srv->svc->demo = NULL;
}

/* ---- routes ---- */

static void not_found(rtmd_conn *c, const http_request *req)
{
    http_respond_error(c, req, 404, "not_found", "no such resource");
}

/* True when the demo project also runs the RealTimeCat demo backend
 * (rtcat/rtcat.c: rtcat_demo = 1, or the store's demo project alone with its
 * derived API key), which the call page takes its tokens from. */
static bool demo_has_rtcat(const rtmd_server *srv, const rtmd_project *p)
{
    if (!rtcat_enabled(p))
        return false;
    return p->limits.rtcat_demo || (srv->cfg.nprojects == 0 && srv->nprojects == 1);
}

/* {"app_id": ..., "ws_port": n|null, "wss_port": n|null, "path": ...,
 *  "rtcat_demo": bool} */
static void serve_config(rtmd_conn *c, const http_request *req, const demo_state *st)
{
    rtmd_server *srv = c->srv;
    const rtmd_listener *ws = &srv->listeners[ENDPOINT_CLIENT_WS], *wss = &srv->listeners[ENDPOINT_CLIENT_WSS];
    char ws_port[16] = "null", wss_port[16] = "null";
    if (ws->active)
        snprintf(ws_port, sizeof ws_port, "%d", ws->port);
    if (wss->active)
        snprintf(wss_port, sizeof wss_port, "%d", wss->port);
    /* ws_path is printable ASCII without spaces (config.c): only '"' and
     * '\' need escaping. */
    char path[2 * sizeof srv->cfg.ws_path];
    size_t n = 0;
    for (const char *s = srv->cfg.ws_path; *s; s++) {
        if (*s == '"' || *s == '\\')
            path[n++] = '\\';
        path[n++] = *s;
    }
    path[n] = '\0';
    char body[512];
    int len = snprintf(body, sizeof body,
                       "{\"app_id\":\"%s\",\"ws_port\":%s,\"wss_port\":%s,\"path\":\"%s\",\"rtcat_demo\":%s}",
                       st->project->limits.app_id, ws_port, wss_port, path,
                       demo_has_rtcat(srv, st->project) ? "true" : "false");
    if (len < 0 || (size_t)len >= sizeof body) {
        http_respond_error(c, req, 500, "internal", "configuration too long");
        return;
    }
    http_respond_with(c, req, 200, "application/json", DEMO_JSON_HEADERS, body, (size_t)len);
}

/* {"token": ...} for ?user=ID: unauthenticated on purpose (see the top). */
static void serve_token(rtmd_conn *c, const http_request *req, const demo_state *st)
{
    char user[IDENTITY_STRING_MAX + 2];
    if (http_query_param(req->query, "user", user, sizeof user) != 1 || !identity_validate(user, strlen(user))) {
        http_respond_error(c, req, 400, "invalid_user", "user: 1-128 characters of a-z A-Z 0-9 _ @ - .");
        return;
    }
    char token[AT_TOKEN_MAX + 1];
    if (rtstoken_mint(st->project, user, strlen(user), DEMO_TOKEN_TTL, (uint64_t)clock_unix_seconds(), token,
                      sizeof token) != RTSTOKEN_OK) {
        http_respond_error(c, req, 500, "internal", "cannot build the token");
        return;
    }
    char body[AT_TOKEN_MAX + 32];
    int len = snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
    http_respond_with(c, req, 200, "application/json", DEMO_JSON_HEADERS, body, (size_t)len);
}

/* Every path under /demo: GET and HEAD when the demo is on, 404 when off. */
static void route_demo(rtmd_conn *c, const http_request *req)
{
    const demo_state *st = c->srv->svc->demo;
    if (!st || !st->project) {
        not_found(c, req);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_respond_error(c, req, 405, "method_not_allowed", "this resource does not answer that method");
        return;
    }
    if (strcmp(req->path, "/demo") == 0) {
        static const char body[] = "/demo/\n";
        http_respond_with(c, req, 301, "text/plain; charset=utf-8", "Location: /demo/\r\n" DEMO_HEADERS, body,
                          sizeof body - 1);
        return;
    }
    const char *name = req->path + strlen("/demo/");
    if (strcmp(name, "config.json") == 0) {
        serve_config(c, req, st);
        return;
    }
    if (strcmp(name, "token") == 0) {
        serve_token(c, req, st);
        return;
    }
    static_files_respond(c, req, &st->files, "/demo/", name, DEMO_HEADERS);
}

/* Any method: the handler tells 404 (off) from 405 (on, not GET/HEAD). */
static const rtmd_http_route demo_routes[] = {{NULL, "/demo", route_demo}, {NULL, "/demo/*", route_demo}};

/* The demo's project is chosen at start. */
static int demo_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    (void)srv;
    if (!p->limits.demo)
        return 0;
    snprintf(err, errlen, "demo = 1 takes a restart (the demo's project is chosen at start)");
    return -1;
}

const rtmd_module demo_module = {.name = "demo",
                                 .init = demo_init,
                                 .free = demo_free,
                                 .project_added = demo_project_added,
                                 RTMD_MODULE_ROUTES(demo_routes)};
