/* The admin page: with admin_token set, rtmd answers GET /admin/api/stats
 * on the HTTP gate with a JSON summary of this node (projects and their
 * sessions, connections per gate, cumulative logins and messages, store
 * size, queue and write latency, the fullest rooms, the last warnings and
 * errors) to a request that carries "Authorization: Bearer <admin_token>";
 * with admin_dir set too, it serves the page built from admin/ (admin/dist)
 * at /admin/, loaded into memory at start (dispatch/static_files.c). The
 * figures come from the same counters as /metrics; the page turns the
 * cumulative ones into rates. Off (no admin_token), /admin answers 404 like
 * any unknown path. Owns the page's files, the token's digest (the token is
 * compared through SHA-256 digests in constant time, so neither its bytes
 * nor its length leak through timing), the wrong tokens counted per source
 * address (ten a minute, then 429) and the node's start time. */
#include "clock.h"
#include "http.h"
#include "lathist.h"
#include "log.h"
#include "messages.h"
#include "module.h"
#include "rooms.h"
#include "static_files.h"
#include "users.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Rooms and log lines the answer lists, and a bound on its size (the
 * lines alone take up to 20 x 512 bytes, escaped). */
#define ADMIN_TOP_ROOMS 10
#define ADMIN_RECENT_LINES RTM_LOG_RECENT_MAX
#define ADMIN_STATS_MAX (96 * 1024)

/* The page loads its script and styles from here and polls the API of
 * the same origin; nothing inline, nothing from elsewhere. */
#define ADMIN_CSP                                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "          \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define ADMIN_HEADERS                                                                                                \
    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"               \
    "Content-Security-Policy: " ADMIN_CSP "\r\n"
#define ADMIN_API_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

/* Wrong tokens: at most ADMIN_FAILS_MAX a minute from one source address;
 * past that the address is answered 429 until its minute is over, even
 * with the right token, so guessing costs a minute per ten tries. The
 * addresses are kept in a small table; one not in it takes the slot whose
 * minute began first. */
#define ADMIN_FAILS_MAX 10
#define ADMIN_FAIL_WINDOW_MS 60000
#define ADMIN_FAIL_SLOTS 64

typedef struct fail_slot {
    char addr[RTMD_PEER_LEN]; /* the peer without its port; "" = free */
    uint64_t since_ms;        /* start of its minute */
    uint32_t fails;
} fail_slot;

typedef struct admin_state {
    fail_slot fails[ADMIN_FAIL_SLOTS];
    bool on;                                   /* admin_token is set */
    unsigned char token_digest[SHA256_DIGEST_LENGTH];
    bool page;                                 /* admin_dir is loaded */
    static_files files;
    uint64_t started_ms;                       /* clock_monotonic_ms at start */
} admin_state;

/* The page's files from admin_dir (none when empty), replacing those
 * loaded before only when the directory loads and has an index.html. */
static int load_page(rtmd_server *srv, admin_state *st, char *err, size_t errlen)
{
    const char *dir = srv->cfg.admin_dir;
    if (dir[0] == '\0') {
        static_files_free(&st->files);
        st->page = false;
        LOG_INFO("admin API at /admin/api/stats (no admin_dir: no page)");
        return 0;
    }
    static_files *next = calloc(1, sizeof *next);
    if (!next) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (static_files_load(next, "admin_dir", dir, err, errlen) != 0) {
        free(next);
        return -1;
    }
    if (!static_files_find(next, "index.html")) {
        static_files_free(next);
        free(next);
        snprintf(err, errlen, "admin_dir %s: no index.html (build it: cd admin && npm ci && npm run build)", dir);
        return -1;
    }
    static_files_free(&st->files);
    st->files = *next;
    free(next);
    st->page = true;
    LOG_INFO("admin page at /admin/ (%zu files from %s)", st->files.n, dir);
    return 0;
}

/* The token (and with it the page) as the configuration says now: an
 * empty one turns both off; a new one replaces the old at once. */
static int apply_config(rtmd_server *srv, admin_state *st, char *err, size_t errlen)
{
    const char *token = srv->cfg.admin_token;
    if (token[0] == '\0') {
        if (srv->cfg.admin_dir[0])
            LOG_INFO("admin_dir is set but admin_token is empty: the admin page is off"); /* the package's default */
        st->on = false;
        OPENSSL_cleanse(st->token_digest, sizeof st->token_digest);
        return 0;
    }
    SHA256((const unsigned char *)token, strlen(token), st->token_digest);
    st->on = true;
    return load_page(srv, st, err, errlen);
}

static int admin_init(rtmd_server *srv, char *err, size_t errlen)
{
    admin_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->admin = st;
    st->started_ms = clock_monotonic_ms();
    return apply_config(srv, st, err, errlen);
}

/* SIGHUP: the token and admin_dir again; a directory that does not load
 * keeps the page loaded before (the token is the new one either way). */
static int admin_reload(rtmd_server *srv, char *err, size_t errlen)
{
    admin_state *st = srv->svc->admin;
    return st ? apply_config(srv, st, err, errlen) : 0;
}

static void admin_free(rtmd_server *srv)
{
    admin_state *st = srv->svc->admin;
    if (!st)
        return;
    static_files_free(&st->files);
    OPENSSL_cleanse(st->token_digest, sizeof st->token_digest);
    free(st);
    srv->svc->admin = NULL;
}

/* ---- the token ---- */

/* Whether the request carries "Authorization: Bearer <admin_token>". The
 * digests of the given and the configured token are compared with
 * CRYPTO_memcmp: the time taken depends on neither token. */
static bool authorized(const admin_state *st, const http_request *req)
{
    const char *auth = http_request_header(req, "authorization");
    static const char scheme[] = "Bearer ";
    if (!auth || strncasecmp(auth, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *given = auth + sizeof scheme - 1;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, strlen(given), digest);
    return CRYPTO_memcmp(digest, st->token_digest, sizeof digest) == 0;
}

/* The failure count of the request's source address, its minute begun
 * again when it is over. */
static fail_slot *fail_slot_of(admin_state *st, rtmd_conn *c, uint64_t now)
{
    char addr[RTMD_PEER_LEN];
    conn_peer(c, addr);
    char *port = strrchr(addr, ':');
    if (port && (addr[0] != '[' || port[-1] == ']'))
        *port = '\0';
    fail_slot *oldest = &st->fails[0];
    for (size_t i = 0; i < ADMIN_FAIL_SLOTS; i++) {
        fail_slot *f = &st->fails[i];
        if (strcmp(f->addr, addr) == 0) {
            if (now - f->since_ms >= ADMIN_FAIL_WINDOW_MS) {
                f->since_ms = now;
                f->fails = 0;
            }
            return f;
        }
        if (!f->addr[0] || f->since_ms < oldest->since_ms)
            oldest = f;
        if (!f->addr[0])
            break;
    }
    snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->since_ms = now;
    oldest->fails = 0;
    return oldest;
}

/* ---- the figures ---- */

static json_t *json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *latency_of(lat_stage s)
{
    uint64_t count, sum;
    lat_totals(s, &count, &sum);
    return json_pack("{s:o, s:o}", "count", json_u64(count), "sum_ns", json_u64(sum));
}

static json_t *store_figures(rtmd_server *srv)
{
    bool sqlite = srv->store && !store_is_postgres(srv->store);
    json_t *latency = json_object();
    json_object_set_new(latency, lat_stage_label(LAT_APPLY), latency_of(LAT_APPLY));
    json_object_set_new(latency, lat_stage_label(LAT_SERVER), latency_of(LAT_SERVER));
    return json_pack("{s:o, s:o, s:o}", "bytes",
                     sqlite ? json_integer((json_int_t)store_disk_bytes(srv->store)) : json_null(), "pending",
                     json_u64(srv->store ? store_pending(srv->store) : 0), "latency", latency);
}

static json_t *stats_json(rtmd_server *srv, const admin_state *st)
{
    const rtmd_metrics *m = &srv->net.metrics;
    json_t *projects = json_array();
    for (size_t i = 0; i < srv->nprojects; i++)
        if (!srv->projects[i].removed)
            json_array_append_new(projects, json_pack("{s:I, s:I}", "pid", (json_int_t)srv->projects[i].pid,
                                                      "sessions", (json_int_t)srv->projects[i].nsessions));
    json_t *connections = json_object();
    for (int g = 0; g < GATE_COUNT; g++)
        json_object_set_new(connections, rtmd_gate_name((rtmd_gate)g), json_u64(m->current[g]));
    uint64_t stored[4];
    messages_stored_counts(srv, stored);
    rooms_count top[ADMIN_TOP_ROOMS];
    size_t ntop = rooms_top(srv, top, ADMIN_TOP_ROOMS);
    json_t *rooms = json_array();
    for (size_t i = 0; i < ntop; i++)
        json_array_append_new(rooms, json_pack("{s:I, s:I, s:I}", "pid", (json_int_t)top[i].pid, "rid",
                                               (json_int_t)top[i].rid, "members", (json_int_t)top[i].members));
    static char lines[ADMIN_RECENT_LINES][RTM_LOG_RECENT_LINE];
    size_t nlines = rtm_log_recent(lines, ADMIN_RECENT_LINES);
    json_t *recent = json_array();
    for (size_t i = 0; i < nlines; i++)
        json_array_append_new(recent, json_string(lines[i])); /* valid UTF-8: log.c's ring keeps it so */
    return json_pack("{s:s, s:I, s:o, s:o, s:o, s:{s:o, s:o, s:o}, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:o}",
                     "version", RTMD_VERSION, "uptime_seconds",
                     (json_int_t)((clock_monotonic_ms() - st->started_ms) / 1000), "projects", projects,
                     "connections", connections, "sessions", json_u64(users_count(srv)), "logins", "ok",
                     json_u64(m->logins[LOGIN_OK]), "denied", json_u64(m->logins[LOGIN_DENIED]), "error",
                     json_u64(m->logins[LOGIN_ERROR]), "messages", "p2p", json_u64(stored[0]), "group",
                     json_u64(stored[1]), "room", json_u64(stored[2]), "broadcast", json_u64(stored[3]), "store",
                     store_figures(srv), "top_rooms", rooms, "recent_errors", recent);
}

static void serve_stats(rtmd_conn *c, const http_request *req, admin_state *st)
{
    uint64_t now = clock_monotonic_ms();
    fail_slot *fails = fail_slot_of(st, c, now);
    if (fails->fails >= ADMIN_FAILS_MAX) {
        char headers[160];
        snprintf(headers, sizeof headers, "Retry-After: %llu\r\n" ADMIN_API_HEADERS,
                 (unsigned long long)((fails->since_ms + ADMIN_FAIL_WINDOW_MS - now + 999) / 1000));
        static const char body[] =
            "{\"error\":\"too_many_failures\",\"description\":\"too many wrong admin tokens from this address\"}";
        http_respond_with(c, req, 429, "application/json", headers, body, sizeof body - 1);
        return;
    }
    if (!authorized(st, req)) {
        fails->fails++;
        static const char body[] = "{\"error\":\"unauthorized\",\"description\":\"an admin token is needed\"}";
        http_respond_with(c, req, 401, "application/json",
                          "WWW-Authenticate: Bearer realm=\"rtmd admin\"\r\n" ADMIN_API_HEADERS, body, sizeof body - 1);
        return;
    }
    json_t *stats = stats_json(c->srv, st);
    char *body = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    json_decref(stats);
    size_t len = body ? strlen(body) : 0;
    if (!body || len > ADMIN_STATS_MAX) {
        free(body);
        static const char fail[] = "{\"error\":\"internal\",\"description\":\"cannot build the figures\"}";
        http_respond_with(c, req, 500, "application/json", ADMIN_API_HEADERS, fail, sizeof fail - 1);
        return;
    }
    http_respond_with(c, req, 200, "application/json", ADMIN_API_HEADERS, body, len);
    free(body);
}

/* ---- routes ---- */

/* Every path under /admin: 404 when off; GET and HEAD when on. */
static void route_admin(rtmd_conn *c, const http_request *req)
{
    admin_state *st = c->srv->svc->admin;
    bool api = strcmp(req->path, "/admin/api/stats") == 0;
    if (!st || !st->on || (!api && !st->page)) {
        http_respond_error(c, req, 404, "not_found", "no such resource");
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        static const char body[] =
            "{\"error\":\"method_not_allowed\",\"description\":\"this resource does not answer that method\"}";
        http_respond_with(c, req, 405, "application/json", api ? ADMIN_API_HEADERS : ADMIN_HEADERS, body,
                          sizeof body - 1);
        return;
    }
    if (api) {
        serve_stats(c, req, st);
        return;
    }
    if (strcmp(req->path, "/admin") == 0) {
        static const char body[] = "/admin/\n";
        http_respond_with(c, req, 301, "text/plain; charset=utf-8", "Location: /admin/\r\n" ADMIN_HEADERS, body,
                          sizeof body - 1);
        return;
    }
    static_files_respond(c, req, &st->files, "/admin/", req->path + strlen("/admin/"), ADMIN_HEADERS);
}

static const rtmd_http_route admin_routes[] = {{NULL, "/admin", route_admin}, {NULL, "/admin/*", route_admin}};

const rtmd_module admin_module = {.name = "admin",
                                  .init = admin_init,
                                  .free = admin_free,
                                  .reload = admin_reload,
                                  RTMD_MODULE_ROUTES(admin_routes)};
