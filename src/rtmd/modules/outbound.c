/* Outgoing HTTP POSTs (see outbound.h): the allowlist, and libcurl's multi
 * interface driven by rtmd's loop.
 *
 * Driving: curl tells us, through its socket callback, which sockets to
 * watch for what (one uv_poll per socket) and, through its timer callback,
 * when it next needs to run (one uv_timer); a poll event or the timer
 * calls curl_multi_socket_action, after which finished transfers are
 * collected and their done callbacks run. Nothing here waits: name
 * resolution runs in curl's resolver thread, connecting and TLS are
 * non-blocking. The poll and timer handles are unreferenced, so that they
 * never keep the loop alive on their own (a graceful stop closes the
 * connections, and with them the POSTs of p2server.c).
 *
 * Pinning: the URL is parsed once (curl_url), checked part by part, and
 * that same parsed handle is given to curl (CURLOPT_CURLU), so the checked
 * URL is the one fetched. Every socket curl opens goes through
 * open_socket, which refuses an address whose port is not the checked one
 * or, when the entry names an IP address, an address that is not it. With
 * no redirects and no proxies, the only thing the allowlist does not pin is
 * what a host name resolves to (see docs/rtm-methods.md, P2Server).
 *
 * State: the transfers in flight by id, the counts in flight per project
 * and per user, the poll handles, and counters for /metrics. */
#include "outbound.h"

#include "log.h"
#include "module.h"
#include "pairmap.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- the allowlist ---- */

typedef struct url_parts {
    char scheme[8];
    char host[256];    /* lower case; an IPv6 address in brackets */
    long port;
    char *path;        /* malloc'd */
    int ip_family;     /* AF_INET / AF_INET6 when host is an address, else 0 */
    unsigned char ip[16];
} url_parts;

struct outbound_allowlist {
    size_t n;
    url_parts *entries;
};

static void parts_free(url_parts *p)
{
    free(p->path);
    p->path = NULL;
}

static bool host_is_name(const char *h)
{
    if (!*h || *h == '.' || *h == '-')
        return false;
    for (const char *c = h; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.')
            return false;
    return true;
}

/* Parses url (NUL-terminated) into *h and *p, refusing what the allowlist
 * has no place for. Returns 0, or -1 with a reason in why. */
static int parse_url(const char *url, bool allow_query, CURLU **hout, url_parts *p, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    CURLU *h = curl_url();
    char *v = NULL;
    if (!h) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (strlen(url) > OUTBOUND_MAX_URL) {
        snprintf(why, whylen, "URL longer than %d bytes", OUTBOUND_MAX_URL);
        goto fail;
    }
    if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(why, whylen, "not a URL (scheme://host[:port]/path)");
        goto fail;
    }
    if (curl_url_get(h, CURLUPART_SCHEME, &v, 0) != CURLUE_OK || (strcmp(v, "http") != 0 && strcmp(v, "https") != 0)) {
        snprintf(why, whylen, "only http and https URLs");
        goto fail;
    }
    snprintf(p->scheme, sizeof p->scheme, "%s", v);
    curl_free(v);
    v = NULL;
    static const struct {
        CURLUPart part;
        const char *what;
    } banned[] = {{CURLUPART_USER, "a user"},        {CURLUPART_PASSWORD, "a password"},
                  {CURLUPART_OPTIONS, "login options"}, {CURLUPART_FRAGMENT, "a fragment"},
                  {CURLUPART_ZONEID, "an IPv6 zone id"}, {CURLUPART_QUERY, "a query"}};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++) {
        if (banned[i].part == CURLUPART_QUERY && allow_query)
            continue;
        if (curl_url_get(h, banned[i].part, &v, 0) == CURLUE_OK) {
            snprintf(why, whylen, "a URL with %s", banned[i].what);
            goto fail;
        }
        curl_free(v); /* NULL unless OK */
        v = NULL;
    }
    if (curl_url_get(h, CURLUPART_HOST, &v, 0) != CURLUE_OK || strlen(v) >= sizeof p->host) {
        snprintf(why, whylen, "no host, or too long a host");
        goto fail;
    }
    for (char *c = v; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    snprintf(p->host, sizeof p->host, "%s", v);
    curl_free(v);
    v = NULL;
    size_t hl = strlen(p->host);
    if (p->host[0] == '[' && hl > 2 && p->host[hl - 1] == ']') {
        char inner[256];
        snprintf(inner, sizeof inner, "%.*s", (int)(hl - 2), p->host + 1);
        if (inet_pton(AF_INET6, inner, p->ip) != 1) {
            snprintf(why, whylen, "not an IPv6 address in brackets");
            goto fail;
        }
        p->ip_family = AF_INET6;
    } else if (inet_pton(AF_INET, p->host, p->ip) == 1) {
        p->ip_family = AF_INET;
    } else if (!host_is_name(p->host)) {
        snprintf(why, whylen, "a host name of letters, digits, '-' and '.' only");
        goto fail;
    }
    if (curl_url_get(h, CURLUPART_PORT, &v, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(why, whylen, "no port");
        goto fail;
    }
    p->port = strtol(v, NULL, 10);
    curl_free(v);
    v = NULL;
    if (curl_url_get(h, CURLUPART_PATH, &v, 0) != CURLUE_OK) {
        snprintf(why, whylen, "no path");
        goto fail;
    }
    for (const char *c = v; *c; c++)
        if (*c == '\\' || (*c == '%' && (strncasecmp(c, "%2e", 3) == 0 || strncasecmp(c, "%2f", 3) == 0 ||
                                         strncasecmp(c, "%5c", 3) == 0))) {
            snprintf(why, whylen, "a path with '\\' or an encoded '.', '/' or '\\'");
            goto fail;
        }
    p->path = strdup(v);
    curl_free(v);
    v = NULL;
    if (!p->path) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    if (hout)
        *hout = h;
    else
        curl_url_cleanup(h);
    return 0;
fail:
    curl_free(v);
    curl_url_cleanup(h);
    parts_free(p);
    return -1;
}

void outbound_allowlist_free(outbound_allowlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        parts_free(&l->entries[i]);
    free(l->entries);
    free(l);
}

int outbound_allowlist_parse(const char *spec, outbound_allowlist **out, char *err, size_t errlen)
{
    *out = NULL;
    outbound_allowlist *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *c = spec;
    while (*c) {
        while (*c == ' ' || *c == '\t' || *c == ',')
            c++;
        if (!*c)
            break;
        const char *end = c;
        while (*end && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        char entry[OUTBOUND_MAX_URL + 2];
        snprintf(entry, sizeof entry, "%.*s", (int)(end - c), c);
        c = end;
        url_parts *grown = realloc(l->entries, (l->n + 1) * sizeof *grown);
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            outbound_allowlist_free(l);
            return -1;
        }
        l->entries = grown;
        char why[128];
        if (parse_url(entry, false, NULL, &l->entries[l->n], why, sizeof why) != 0) {
            snprintf(err, errlen, "'%.200s': %s", entry, why);
            outbound_allowlist_free(l);
            return -1;
        }
        l->n++;
    }
    if (l->n == 0) {
        outbound_allowlist_free(l);
        return 0;
    }
    *out = l;
    return 0;
}

static bool path_under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return false;
    return path[n] == '\0' || (n > 0 && prefix[n - 1] == '/') || path[n] == '/';
}

/* The entry of l that allows p, or NULL. */
static const url_parts *allowing_entry(const outbound_allowlist *l, const url_parts *p)
{
    for (size_t i = 0; l && i < l->n; i++) {
        const url_parts *e = &l->entries[i];
        if (strcmp(e->scheme, p->scheme) == 0 && strcmp(e->host, p->host) == 0 && e->port == p->port &&
            path_under(p->path, e->path))
            return e;
    }
    return NULL;
}

/* Parses and checks url: 0 with *h (for curl) and *p filled, or -1 with a
 * reason. */
static int check_url(const outbound_allowlist *l, const char *url, size_t len, CURLU **h, url_parts *p, char *why,
                     size_t whylen)
{
    if (!l) {
        snprintf(why, whylen, "no URL is allowed");
        return -1;
    }
    if (len > OUTBOUND_MAX_URL || memchr(url, '\0', len)) {
        snprintf(why, whylen, "URL longer than %d bytes, or with a NUL", OUTBOUND_MAX_URL);
        return -1;
    }
    char buf[OUTBOUND_MAX_URL + 1];
    memcpy(buf, url, len);
    buf[len] = '\0';
    if (parse_url(buf, true, h, p, why, whylen) != 0)
        return -1;
    if (!allowing_entry(l, p)) {
        snprintf(why, whylen, "URL not in the allowlist");
        if (h)
            curl_url_cleanup(*h);
        parts_free(p);
        return -1;
    }
    return 0;
}

bool outbound_url_allowed(const outbound_allowlist *l, const char *url, size_t len, char *why, size_t whylen)
{
    url_parts p;
    if (check_url(l, url, len, NULL, &p, why, whylen) != 0)
        return false;
    parts_free(&p);
    return true;
}

/* ---- transfers ---- */

enum { R_COUNT = OUTBOUND_FAILED + 1 };
static const char *const failure_names[R_COUNT] = {"timeout", "refused", "connect_failed", "too_large", "failed",
                                                   "cancelled"};
enum { REF_PROJECT, REF_USER, REF_URL, REF_TOO_LARGE, REF_COUNT };
static const char *const refusal_names[REF_COUNT] = {"project_busy", "user_busy", "not_allowed", "too_large"};

typedef struct poll_ctx {
    uv_poll_t poll;
    struct outbound_state *s;
    curl_socket_t fd;
    struct poll_ctx *prev, *next;
} poll_ctx;

typedef struct transfer {
    struct outbound_state *s;
    int64_t id, pid, uid;
    CURL *easy;
    CURLU *url;
    struct curl_slist *headers;
    char *body;
    char *reply;
    size_t reply_len, reply_cap;
    bool too_large, pin_refused;
    long port;
    int ip_family;
    unsigned char ip[16];
    outbound_done_fn done;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
} transfer;

struct outbound_state {
    rtmd_server *srv;
    CURLM *multi;
    uv_timer_t timer;
    poll_ctx *polls;
    pairmap transfers;   /* (0, id) -> transfer */
    pairmap per_project; /* (pid, 0) -> count, as a pointer-sized integer */
    pairmap per_user;    /* (pid, uid) -> count */
    int64_t next_id;
    uint64_t in_flight;
    uint64_t requests, results[R_COUNT], cancelled, refusals[REF_COUNT], connects, pin_refusals;
};

static struct outbound_state *state(rtmd_server *srv)
{
    return srv->svc->outbound;
}

static uintptr_t count_get(pairmap *m, uint64_t a, uint64_t b)
{
    return (uintptr_t)pairmap_get(m, a, b);
}

static int count_add(pairmap *m, uint64_t a, uint64_t b, int d)
{
    uintptr_t n = count_get(m, a, b) + (uintptr_t)(intptr_t)d;
    if (n == 0) {
        pairmap_del(m, a, b);
        return 0;
    }
    return pairmap_put(m, a, b, (void *)n);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer *t = userp;
    size_t n = size * nmemb;
    if (n > OUTBOUND_MAX_REPLY_BODY - t->reply_len) {
        t->too_large = true;
        return 0; /* ends the transfer with CURLE_WRITE_ERROR */
    }
    if (t->reply_len + n > t->reply_cap) {
        size_t cap = t->reply_cap ? t->reply_cap : 1024;
        while (cap < t->reply_len + n)
            cap *= 2;
        if (cap > OUTBOUND_MAX_REPLY_BODY)
            cap = OUTBOUND_MAX_REPLY_BODY;
        char *grown = realloc(t->reply, cap);
        if (!grown)
            return 0;
        t->reply = grown;
        t->reply_cap = cap;
    }
    memcpy(t->reply + t->reply_len, data, n);
    t->reply_len += n;
    return n;
}

/* Every socket curl connects with: only to the checked port, and to the
 * checked address when the entry names one. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    transfer *t = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    bool ok = false;
    if (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&a->addr;
        ok = ntohs(in->sin_port) == t->port &&
             (t->ip_family == 0 || (t->ip_family == AF_INET && memcmp(&in->sin_addr, t->ip, 4) == 0));
    } else if (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&a->addr;
        ok = ntohs(in6->sin6_port) == t->port &&
             (t->ip_family == 0 || (t->ip_family == AF_INET6 && memcmp(&in6->sin6_addr, t->ip, 16) == 0));
    }
    if (!ok) {
        t->pin_refused = true;
        t->s->pin_refusals++;
        return CURL_SOCKET_BAD;
    }
    t->s->connects++;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void transfer_free(transfer *t)
{
    curl_slist_free_all(t->headers);
    curl_url_cleanup(t->url);
    free(t->body);
    free(t->reply);
    free(t);
}

/* Takes t out of curl and of the counts; the caller then calls done (or
 * not) and frees it. */
static void transfer_detach(transfer *t)
{
    struct outbound_state *s = t->s;
    curl_multi_remove_handle(s->multi, t->easy);
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
    pairmap_del(&s->transfers, 0, (uint64_t)t->id);
    count_add(&s->per_project, (uint64_t)t->pid, 0, -1);
    count_add(&s->per_user, (uint64_t)t->pid, (uint64_t)t->uid, -1);
    s->in_flight--;
}

static void transfer_finish(transfer *t, CURLcode rc)
{
    struct outbound_state *s = t->s;
    outbound_reply r = {.result = OUTBOUND_FAILED};
    long os_errno = 0;
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_OK) {
        r.result = OUTBOUND_OK;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = t->reply ? t->reply : "";
        r.len = t->reply_len;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        r.result = OUTBOUND_TIMEOUT;
        r.error = "the app server did not answer in time";
    } else if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        r.result = OUTBOUND_TOO_LARGE;
        r.error = "the app server's reply body is over 64 KiB";
    } else if (t->pin_refused) {
        r.error = "the connection would not go to the allowed address";
    } else if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) {
        r.result = OUTBOUND_REFUSED;
        r.error = "the app server refused the connection";
    } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_SSL_CONNECT_ERROR ||
               rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
        r.result = OUTBOUND_CONNECT_FAILED;
        r.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    } else {
        r.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    }
    s->results[r.result]++;
    if (r.result != OUTBOUND_OK)
        LOG_DEBUG("outbound POST %lld of pid %lld: %s (curl %d)", (long long)t->id, (long long)t->pid, r.error,
                  (int)rc);
    transfer_detach(t);
    t->done(t->arg, &r);
    transfer_free(t);
}

static void collect_done(struct outbound_state *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = m->data.result;
        if (t)
            transfer_finish(t, rc);
    }
}

/* ---- curl driven by the loop ---- */

static void on_timer(uv_timer_t *h)
{
    struct outbound_state *s = h->data;
    int running;
    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(s);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct outbound_state *s = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&s->timer);
    else
        uv_timer_start(&s->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    poll_ctx *p = h->data;
    struct outbound_state *s = p->s;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->multi, p->fd, flags, &running);
    collect_done(s);
}

static void poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void poll_drop(poll_ctx *p)
{
    struct outbound_state *s = p->s;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->polls = p->next;
    if (p->next)
        p->next->prev = p->prev;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, poll_closed);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct outbound_state *s = userp;
    poll_ctx *p = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (p) {
            curl_multi_assign(s->multi, fd, NULL);
            poll_drop(p);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return -1;
        if (uv_poll_init_socket(s->srv->loop, &p->poll, fd) != 0) {
            free(p);
            return -1;
        }
        uv_unref((uv_handle_t *)&p->poll);
        p->poll.data = p;
        p->s = s;
        p->fd = fd;
        p->next = s->polls;
        if (s->polls)
            s->polls->prev = p;
        s->polls = p;
        curl_multi_assign(s->multi, fd, p);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&p->poll, events, on_poll);
    return 0;
}

/* ---- the API ---- */

int64_t outbound_post(rtmd_server *srv, const outbound_post_args *a, outbound_done_fn done, void *arg)
{
    struct outbound_state *s = state(srv);
    if (a->len > OUTBOUND_MAX_REQUEST_BODY) {
        s->refusals[REF_TOO_LARGE]++;
        return OUTBOUND_E_TOO_LARGE;
    }
    if (count_get(&s->per_project, (uint64_t)a->pid, 0) >= a->max_project) {
        s->refusals[REF_PROJECT]++;
        return OUTBOUND_E_PROJECT_BUSY;
    }
    if (count_get(&s->per_user, (uint64_t)a->pid, (uint64_t)a->uid) >= a->max_user) {
        s->refusals[REF_USER]++;
        return OUTBOUND_E_USER_BUSY;
    }
    url_parts p;
    CURLU *h = NULL;
    char why[128];
    if (check_url(a->allow, a->url, a->url_len, &h, &p, why, sizeof why) != 0) {
        s->refusals[REF_URL]++;
        return OUTBOUND_E_NOT_ALLOWED;
    }
    transfer *t = calloc(1, sizeof *t);
    char ct[160];
    snprintf(ct, sizeof ct, "Content-Type: %s", a->content_type);
    if (!t || !(t->easy = curl_easy_init()) || !(t->body = malloc(a->len ? a->len : 1))) {
        if (t && t->easy)
            curl_easy_cleanup(t->easy);
        free(t);
        curl_url_cleanup(h);
        parts_free(&p);
        return OUTBOUND_E_NOMEM;
    }
    t->s = s;
    t->url = h;
    t->port = p.port;
    t->ip_family = p.ip_family;
    memcpy(t->ip, p.ip, sizeof t->ip);
    parts_free(&p);
    t->pid = a->pid;
    t->uid = a->uid;
    t->done = done;
    t->arg = arg;
    memcpy(t->body, a->body, a->len);
    struct curl_slist *hd = curl_slist_append(NULL, ct);
    t->headers = hd;
    if (hd)
        hd = curl_slist_append(hd, "Expect:"); /* no 100-continue round trip */
    if (hd)
        hd = curl_slist_append(hd, "User-Agent: rtmd/" RTMD_VERSION);
    CURL *e = t->easy;
    CURLcode rc = hd ? CURLE_OK : CURLE_OUT_OF_MEMORY;
#define SET(opt, val)                                                                                                  \
    do {                                                                                                               \
        if (rc == CURLE_OK)                                                                                            \
            rc = curl_easy_setopt(e, opt, val);                                                                        \
    } while (0)
    SET(CURLOPT_CURLU, h);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* "" = no proxy, whatever the environment says */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)a->timeout_ms);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->len);
    SET(CURLOPT_POSTFIELDS, t->body);
    SET(CURLOPT_HTTPHEADER, t->headers);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)OUTBOUND_MAX_REPLY_BODY);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, t);
    SET(CURLOPT_PRIVATE, t);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
#undef SET
    if (rc != CURLE_OK || curl_multi_add_handle(s->multi, e) != CURLM_OK) {
        LOG_WARN("outbound: cannot set up a POST: %s", curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        transfer_free(t);
        return OUTBOUND_E_NOMEM;
    }
    t->id = ++s->next_id;
    if (pairmap_put(&s->transfers, 0, (uint64_t)t->id, t) != 0 ||
        count_add(&s->per_project, (uint64_t)a->pid, 0, +1) != 0 ||
        count_add(&s->per_user, (uint64_t)a->pid, (uint64_t)a->uid, +1) != 0) {
        /* out of memory: undo what was counted */
        pairmap_del(&s->transfers, 0, (uint64_t)t->id);
        curl_multi_remove_handle(s->multi, e);
        curl_easy_cleanup(e);
        transfer_free(t);
        return OUTBOUND_E_NOMEM;
    }
    s->in_flight++;
    s->requests++;
    return t->id;
}

void outbound_cancel(rtmd_server *srv, int64_t id)
{
    struct outbound_state *s = state(srv);
    if (!s || id <= 0)
        return;
    transfer *t = pairmap_get(&s->transfers, 0, (uint64_t)id);
    if (!t)
        return;
    s->cancelled++;
    transfer_detach(t);
    transfer_free(t);
}

/* ---- module ---- */

static int outbound_init(rtmd_server *srv, char *err, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    struct outbound_state *s = calloc(1, sizeof *s);
    if (!s || !(s->multi = curl_multi_init())) {
        free(s);
        curl_global_cleanup();
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->srv = srv;
    uv_timer_init(srv->loop, &s->timer);
    uv_unref((uv_handle_t *)&s->timer);
    s->timer.data = s;
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    srv->svc->outbound = s;
    return 0;
}

static void outbound_free(rtmd_server *srv)
{
    struct outbound_state *s = srv->svc->outbound;
    if (!s)
        return;
    /* After a graceful stop the loop has ended: it can run once more to
     * finish closing our handles. Otherwise (a failed start) it may still
     * hold other work, so our handles close with it and their memory stays. */
    bool loop_done = !uv_loop_alive(srv->loop);
    while (s->transfers.count > 0)
        for (size_t i = 0; i < s->transfers.cap; i++)
            if (s->transfers.slots[i].value) {
                transfer *t = s->transfers.slots[i].value;
                transfer_detach(t);
                transfer_free(t);
                break;
            }
    curl_multi_cleanup(s->multi);
    while (s->polls)
        poll_drop(s->polls);
    uv_close((uv_handle_t *)&s->timer, NULL);
    if (loop_done)
        uv_run(srv->loop, UV_RUN_NOWAIT);
    pairmap_free(&s->transfers);
    pairmap_free(&s->per_project);
    pairmap_free(&s->per_user);
    if (loop_done)
        free(s);
    srv->svc->outbound = NULL;
    curl_global_cleanup();
}

static void outbound_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct outbound_state *s = srv->svc->outbound;
    if (!s)
        return;
    prom_metric(out, "rtmd_outbound_requests_total", "counter", "Outgoing HTTP POSTs started (P2Server).",
                s->requests);
    prom_metric(out, "rtmd_outbound_in_flight", "gauge", "Outgoing HTTP POSTs in flight.", s->in_flight);
    /* results[OUTBOUND_OK] are the answered ones; the rest are failures */
    uint64_t failures[R_COUNT];
    for (size_t i = 1; i < R_COUNT; i++)
        failures[i - 1] = s->results[i];
    failures[R_COUNT - 1] = s->cancelled;
    prom_metric(out, "rtmd_outbound_answered_total", "counter",
                "Outgoing HTTP POSTs the server answered (any status).", s->results[OUTBOUND_OK]);
    prom_labelled(out, "rtmd_outbound_failures_total", "counter",
                  "Outgoing HTTP POSTs that got no answer, by reason (cancelled: their client left).", "reason",
                  failure_names, failures, R_COUNT);
    prom_labelled(out, "rtmd_outbound_refused_total", "counter",
                  "Outgoing HTTP POSTs refused before any connection, by reason.", "reason", refusal_names,
                  s->refusals, REF_COUNT);
    prom_metric(out, "rtmd_outbound_connects_total", "counter", "Connections opened for outgoing HTTP POSTs.",
                s->connects);
    prom_metric(out, "rtmd_outbound_pin_refusals_total", "counter",
                "Connections refused because their address was not the checked one.", s->pin_refusals);
}

const rtmd_module outbound_module = {
    .name = "outbound",
    .init = outbound_init,
    .free = outbound_free,
    .metrics = outbound_metrics,
};
