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
 * Owns the loaded files and the choice of the demo project. */
#include "clock.h"
#include "http.h"
#include "identity.h"
#include "log.h"
#include "module.h"
#include "rtcat.h"
#include "rtstoken.h"

#include "accesstoken.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds of what demo_dir may hold; more is a start error. */
#define DEMO_FILES_MAX 64
#define DEMO_BYTES_MAX (8u * 1024 * 1024)
#define DEMO_NAME_MAX 128
/* A served path: <name> or <dir>/<name>. */
#define DEMO_PATH_MAX (2 * DEMO_NAME_MAX + 1)
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

typedef struct demo_file {
    char name[DEMO_PATH_MAX + 1]; /* "<name>" or "<dir>/<name>" */
    const char *type;
    char *data;
    size_t len;
} demo_file;

typedef struct demo_state {
    const rtmd_project *project; /* NULL: the demo is off */
    demo_file files[DEMO_FILES_MAX];
    size_t nfiles;
} demo_state;

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".map", "application/json"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(name + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* A name the demo serves: [A-Za-z0-9_.-]{1,128}, not starting with a dot. */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > DEMO_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

static void free_files(demo_state *st)
{
    for (size_t i = 0; i < st->nfiles; i++)
        free(st->files[i].data);
    st->nfiles = 0;
}

static int load_dir(demo_state *st, int dirfd, const char *dir, const char *sub, size_t *budget, char *err,
                    size_t errlen);

/* Reads one entry of a directory (not following a symbolic link): a
 * regular file of at most budget bytes, or, at the top level only (sub is
 * NULL), a sub-directory whose files are read in turn. Returns 1 loaded,
 * 0 skipped (not a regular file or a directory), -1 error. */
static int load_one(demo_state *st, int dirfd, const char *dir, const char *sub, const char *name, size_t *budget,
                    char *err, size_t errlen)
{
    char shown[DEMO_PATH_MAX + 1];
    snprintf(shown, sizeof shown, "%s%s%s", sub ? sub : "", sub ? "/" : "", name);
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENXIO)
            return 0; /* a symbolic link, a socket */
        snprintf(err, errlen, "demo_dir %s: cannot open %s: %s", dir, shown, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return 0;
    }
    if (S_ISDIR(sb.st_mode) && !sub) {
        int r = load_dir(st, fd, dir, name, budget, err, errlen); /* takes fd */
        return r < 0 ? -1 : 1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return 0;
    }
    if (st->nfiles == DEMO_FILES_MAX) {
        close(fd);
        snprintf(err, errlen, "demo_dir %s: more than %d files", dir, DEMO_FILES_MAX);
        return -1;
    }
    if ((uint64_t)sb.st_size > *budget) {
        close(fd);
        snprintf(err, errlen, "demo_dir %s: its files exceed %u bytes together", dir, DEMO_BYTES_MAX);
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    char *data = malloc(len ? len : 1);
    size_t got = 0;
    while (data && got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!data || got != len) {
        free(data);
        snprintf(err, errlen, "demo_dir %s: cannot read %s", dir, shown);
        return -1;
    }
    demo_file *f = &st->files[st->nfiles++];
    snprintf(f->name, sizeof f->name, "%s", shown);
    f->type = type_of(name);
    f->data = data;
    f->len = len;
    *budget -= len;
    return 1;
}

/* Loads the entries of the directory open as dirfd (closed here): demo_dir
 * itself (sub NULL) or its sub-directory sub. */
static int load_dir(demo_state *st, int dirfd, const char *dir, const char *sub, size_t *budget, char *err,
                    size_t errlen)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        snprintf(err, errlen, "demo_dir %s%s%s: %s", dir, sub ? "/" : "", sub ? sub : "", strerror(errno));
        close(dirfd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!name_ok(e->d_name, strlen(e->d_name))) {
            if (e->d_name[0] != '.')
                LOG_WARN("demo_dir %s: skipping '%s%s%s' (a name of A-Z a-z 0-9 _ . - is served)", dir,
                         sub ? sub : "", sub ? "/" : "", e->d_name);
            continue;
        }
        int r = load_one(st, dirfd, dir, sub, e->d_name, budget, err, errlen);
        if (r < 0)
            rc = -1;
        else if (r == 0)
            LOG_WARN("demo_dir %s: skipping %s%s%s (not a regular file%s)", dir, sub ? sub : "", sub ? "/" : "",
                     e->d_name, sub ? "; one level of directories is served" : " or directory");
    }
    closedir(d);
    return rc;
}

static int load_files(demo_state *st, const char *dir, char *err, size_t errlen)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, errlen, "demo_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t budget = DEMO_BYTES_MAX;
    return load_dir(st, dirfd, dir, NULL, &budget, err, errlen);
}

static const demo_file *find_file(const demo_state *st, const char *name)
{
    for (size_t i = 0; i < st->nfiles; i++)
        if (strcmp(st->files[i].name, name) == 0)
            return &st->files[i];
    return NULL;
}

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
    if (load_files(st, srv->cfg.demo_dir, err, errlen) != 0)
        return -1;
    if (!find_file(st, "index.html")) {
        snprintf(err, errlen, "demo_dir %s: no index.html", srv->cfg.demo_dir);
        return -1;
    }
    st->project = p;
    LOG_INFO("demo pages of project %lld at /demo/ (%zu files from %s)", (long long)p->pid, st->nfiles,
             srv->cfg.demo_dir);
    return 0;
}

static void demo_free(rtmd_server *srv)
{
    demo_state *st = srv->svc->demo;
    if (!st)
        return;
    free_files(st);
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

/* The name of a loaded file for the path after "/demo/": "" is
 * index.html, "<dir>/" is "<dir>/index.html"; each part must be a name the
 * demo serves (name_ok), at most two parts. False for anything else. */
static bool demo_key(const char *path, char *key, size_t cap)
{
    const char *slash = strchr(path, '/');
    if (!slash) {
        if (*path == '\0') {
            snprintf(key, cap, "index.html");
            return true;
        }
        if (!name_ok(path, strlen(path)))
            return false;
        snprintf(key, cap, "%s", path);
        return true;
    }
    size_t dlen = (size_t)(slash - path);
    const char *file = slash + 1;
    if (!name_ok(path, dlen) || strchr(file, '/'))
        return false;
    if (*file == '\0')
        file = "index.html";
    else if (!name_ok(file, strlen(file)))
        return false;
    int n = snprintf(key, cap, "%.*s/%s", (int)dlen, path, file);
    return n > 0 && (size_t)n < cap;
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
    char key[DEMO_PATH_MAX + 1];
    if (!demo_key(name, key, sizeof key)) {
        not_found(c, req);
        return;
    }
    const demo_file *f = find_file(st, key);
    if (!f && !strchr(key, '/')) {
        /* /demo/<dir>: to /demo/<dir>/ when that directory has an index. */
        char index[DEMO_NAME_MAX + sizeof "/index.html"];
        snprintf(index, sizeof index, "%.*s/index.html", DEMO_NAME_MAX, key);
        if (find_file(st, index)) {
            char loc[DEMO_NAME_MAX + 32];
            int n = snprintf(loc, sizeof loc, "Location: /demo/%.*s/\r\n", DEMO_NAME_MAX, key);
            char body[DEMO_NAME_MAX + 16];
            int blen = snprintf(body, sizeof body, "/demo/%.*s/\n", DEMO_NAME_MAX, key);
            char headers[sizeof loc + sizeof DEMO_HEADERS];
            snprintf(headers, sizeof headers, "%.*s%s", n, loc, DEMO_HEADERS);
            http_respond_with(c, req, 301, "text/plain; charset=utf-8", headers, body, (size_t)blen);
            return;
        }
    }
    if (!f) {
        not_found(c, req);
        return;
    }
    http_respond_with(c, req, 200, f->type, DEMO_HEADERS, f->data, f->len);
}

/* Any method: the handler tells 404 (off) from 405 (on, not GET/HEAD). */
static const rtmd_http_route demo_routes[] = {{NULL, "/demo", route_demo}, {NULL, "/demo/*", route_demo}};

const rtmd_module demo_module = {
    .name = "demo", .init = demo_init, .free = demo_free, RTMD_MODULE_ROUTES(demo_routes)};
