/* The rtmd server object: start-up (store, encryption key, projects,
 * method table, listeners), the housekeeping that visits every connection
 * about once a second in slices (handshake, login and idle timeouts,
 * keepalive pings), the ready banner, the graceful stop driven by
 * SIGTERM/SIGINT, the SIGHUP reload, the log file's reopening on SIGUSR1,
 * and what systemd is told of them
 * (sd_notify READY, RELOADING, STOPPING; nothing without NOTIFY_SOCKET). One event loop owns all of this state, so running several
 * loops later means one rtmd_server-like shard per loop. */
#include "server.h"

#include "http.h"
#include "lathist.h"
#include "log.h"
#include "metrics.h"
#include "methods.h"
#include "services.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEMO_PROJECT_PID 1000001
#define STOP_DRAIN_LIMIT_MS 5000
#define STOP_POLL_MS 20
/* Output that did not move for this long will not: its readers stopped
 * reading (the kernel's send buffers are full), so the stop drops it. */
#define STOP_STALL_MS 1000

/* ---- projects ---- */

static int random_secret(char *out, size_t cap)
{
    uint8_t r[16];
    if (RAND_bytes(r, sizeof r) != 1 || cap < 37)
        return -1;
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return 0;
}

/* Lower-case hex of HMAC-SHA256(secret, label), nchars (<= 64) characters. */
static int derive_hex(const char *secret, const char *label, char *out, size_t nchars)
{
    unsigned char mac[32];
    unsigned int len = 0;
    if (nchars > 64 || !HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label,
                             strlen(label), mac, &len) || len != sizeof mac)
        return -1;
    for (size_t i = 0; i < nchars; i++)
        out[i] = "0123456789abcdef"[(mac[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[nchars] = '\0';
    return 0;
}

/* A project that comes from the store (the demo project: no configuration
 * names projects) has no place to keep RTS settings, so its app_id (24 hex
 * characters) and app_key (32), and its RealTimeCat API key and secret
 * (32 each), are derived from its secret: the same on
 * every start, printed on the ready banner, and changed only with the
 * secret. Projects of the configuration have RTS tokens only when it sets
 * app_id and app_key. */
static int derive_rts_keys(rtmd_project *p)
{
    if (derive_hex(p->secret, "rtmd rts app_id", p->limits.app_id, RTMD_APP_ID_LEN) != 0 ||
        derive_hex(p->secret, "rtmd rts app_key", p->limits.app_key, 32) != 0 ||
        derive_hex(p->secret, "rtmd rtcat apikey", p->limits.rtcat_apikey, 32) != 0 ||
        derive_hex(p->secret, "rtmd rtcat secret", p->limits.rtcat_secret, 32) != 0)
        return -1;
    return 0;
}

/* Projects come from the configuration when it names any (and are recorded
 * in the store); otherwise from the store, where the first start creates a
 * demo project that later starts keep. */
static int setup_projects(rtmd_server *srv, char *err, size_t errlen)
{
    const rtmd_config *cfg = &srv->cfg;
    srv->projects = calloc(RTMD_MAX_PROJECTS, sizeof *srv->projects); /* a reload may add some */
    if (!srv->projects)
        return -1;
    if (cfg->nprojects > 0) {
        for (size_t i = 0; i < cfg->nprojects; i++) {
            rtmd_project *p = &srv->projects[i];
            p->pid = cfg->projects[i].pid;
            snprintf(p->secret, sizeof p->secret, "%s", cfg->projects[i].secret);
            p->limits = cfg->projects[i];
            if (store_ensure_project(srv->store, p->pid, p->secret) != 0) {
                snprintf(err, errlen, "cannot record project %lld in the store", (long long)p->pid);
                return -1;
            }
        }
        srv->nprojects = cfg->nprojects;
        return 0;
    }
    store_project stored[RTMD_MAX_PROJECTS];
    size_t count = 0;
    if (store_load_projects(srv->store, stored, RTMD_MAX_PROJECTS, &count) != 0) {
        snprintf(err, errlen, "cannot read projects from the store");
        return -1;
    }
    if (count == 0) {
        char secret[64];
        if (random_secret(secret, sizeof secret) != 0 ||
            store_ensure_project(srv->store, DEMO_PROJECT_PID, secret) != 0 ||
            store_load_projects(srv->store, stored, RTMD_MAX_PROJECTS, &count) != 0 || count == 0) {
            snprintf(err, errlen, "cannot create the demo project");
            return -1;
        }
        LOG_INFO("created demo project %d", DEMO_PROJECT_PID);
    }
    for (size_t i = 0; i < count; i++) {
        rtmd_project *p = &srv->projects[i];
        p->pid = stored[i].pid;
        snprintf(p->secret, sizeof p->secret, "%s", stored[i].secret);
        rtmd_project_config_defaults(&p->limits);
        p->limits.pid = p->pid;
        if (derive_rts_keys(p) != 0) {
            snprintf(err, errlen, "cannot derive the RTS keys of project %lld", (long long)p->pid);
            return -1;
        }
        rtmd_project_config_rts_defaults(&p->limits, true, true); /* it has an app_id */
    }
    srv->nprojects = count;
    return 0;
}

/* ---- listeners ---- */

/* What each endpoint is: its name on the listen line, its gate, TLS. */
static const struct endpoint_kind {
    const char *name;
    rtmd_gate gate;
    bool tls;
} endpoint_kinds[ENDPOINT_COUNT] = {
    [ENDPOINT_CLIENT_TCP] = {"client_tcp", GATE_CLIENT_TCP, false},
    [ENDPOINT_CLIENT_WS] = {"client_ws", GATE_CLIENT_WS, false},
    [ENDPOINT_CLIENT_WSS] = {"client_wss", GATE_CLIENT_WS, true},
    [ENDPOINT_SERVER_TCP] = {"server_tcp", GATE_SERVER_TCP, false},
    [ENDPOINT_HTTP] = {"http", GATE_HTTP, false},
    [ENDPOINT_HTTPS] = {"https", GATE_HTTP, true},
    [ENDPOINT_FILE_TCP] = {"file_tcp", GATE_FILE_TCP, false},
    [ENDPOINT_FILE_WS] = {"file_ws", GATE_FILE_WS, false},
    [ENDPOINT_FILE_WSS] = {"file_wss", GATE_FILE_WS, true},
};

static int start_listener(rtmd_server *srv, rtmd_endpoint e, int port, char *err, size_t errlen)
{
    rtmd_listener *l = &srv->listeners[e];
    l->srv = srv;
    l->name = endpoint_kinds[e].name;
    l->gate = endpoint_kinds[e].gate;
    l->tls = endpoint_kinds[e].tls;
    if (port < 0 || (l->tls && !srv->net.tls))
        return 0;
    struct sockaddr_storage addr;
    const char *host = srv->cfg.listen_host;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                               : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc == 0)
        rc = uv_tcp_init(srv->loop, &l->tcp);
    if (rc != 0) {
        snprintf(err, errlen, "listen_host '%s': %s", host, uv_strerror(rc));
        return -1;
    }
    l->active = true;
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 1024, rtmd_on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d for %s: %s", host, port, l->name, uv_strerror(rc));
        return -1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static void close_listeners(rtmd_server *srv)
{
    for (int e = 0; e < ENDPOINT_COUNT; e++) {
        rtmd_listener *l = &srv->listeners[e];
        if (l->active && !uv_is_closing((uv_handle_t *)&l->tcp))
            uv_close((uv_handle_t *)&l->tcp, NULL);
        l->active = false;
    }
}

/* ---- housekeeping ---- */

/* Deadlines are seen at the connection's next visit: at most about a
 * second late while the number of connections is steady, less than two
 * seconds late in any case (see rtmd_sweep in conn.h). */
static void housekeep(rtmd_conn *c, void *arg)
{
    rtmd_server *srv = arg;
    uint64_t now = uv_now(srv->loop);
    const rtmd_config *cfg = &srv->cfg;
    if (c->closing)
        return;
    bool file_gate = c->gate == GATE_FILE_TCP || c->gate == GATE_FILE_WS;
    /* Client links must log in, app-server links sign a request, in time;
     * file-gate links never log in (each upload carries a file token). */
    if (!c->authenticated && c->gate != GATE_HTTP && !file_gate && now - c->created_ms > (uint64_t)cfg->login_timeout * 1000) {
        srv->net.metrics.timeouts++;
        conn_close(c, c->gate == GATE_SERVER_TCP ? "no signed request within login_timeout"
                                                 : "no login within login_timeout");
        return;
    }
    if (!c->handshaken) {
        if (now - c->created_ms > (uint64_t)cfg->handshake_timeout * 1000) {
            srv->net.metrics.timeouts++;
            conn_close(c, "handshake timeout");
        }
        return;
    }
    if (c->gate == GATE_SERVER_TCP)
        return; /* app servers keep quiet links; TCP keepalive watches them */
    if (now - c->last_recv_ms > (uint64_t)cfg->idle_timeout * 1000) {
        srv->net.metrics.timeouts++;
        conn_close(c, "idle timeout");
        return;
    }
    if (c->gate != GATE_HTTP && !file_gate && now - c->last_ping_ms >= (uint64_t)cfg->ping_interval * 1000) {
        c->last_ping_ms = now;
        conn_send_quest(c, "ping", (const uint8_t *)"\x80", 1);
    } else if (now - c->last_recv_ms >= 1000) {
        /* Quiet for a second: give its buffers back (most connections
         * of a chat server are quiet most of the time). */
        conn_release_idle_buffers(c);
    }
}

static void on_tick(uv_timer_t *t)
{
    rtmd_server *srv = t->data;
    if (srv->stopping)
        return; /* no pings or timeouts while the output drains */
    rtmd_sweep_tick(&srv->net.sweep, srv->net.conns, srv->net.nconns, housekeep, srv);
}

/* Starts the writes of every connection with queued output, and times
 * them (lathist.h). */
static void write_queued(rtmd_server *srv)
{
    uint64_t t0 = lat_now();
    size_t written = rtmd_flush_dirty(&srv->net);
    uint64_t t1 = lat_now();
    lat_flushed(t1);
    if (written) {
        lat_record(LAT_CHECK_RUN, t1 - t0);
        lat_record(LAT_CHECK_CONNS, written);
    }
}

/* At the end of each loop turn: connections closed in it are finished and
 * what the turn queued is written. A write that empties the output of a
 * connection to be closed after it (an HTTP answer without keep-alive, a
 * kicked session) closes it: it is finished in this turn too, or its peer
 * would wait for the close until the next event or housekeeping tick. */
static void on_check(uv_check_t *h)
{
    rtmd_server *srv = h->data;
    do {
        conn_finish_closes(&srv->net);
        write_queued(srv);
    } while (conn_closes_pending(&srv->net));
}

/* After the store ran done callbacks: their answers and pushes are
 * written now, not after the rest of the turn's input. */
static void on_store_dispatched(void *arg)
{
    write_queued(arg);
}

/* ---- graceful stop ---- */

/* Output bytes not yet taken by the kernel, over all connections; *undrained
 * counts the connections that hold some. */
static uint64_t undelivered_output(rtmd_server *srv, size_t *undrained)
{
    uint64_t total = 0;
    *undrained = 0;
    for (rtmd_conn *c = srv->net.conns; c; c = c->next) {
        size_t n = conn_undelivered_bytes(c);
        if (n > 0 || c->writing)
            (*undrained)++;
        total += n;
    }
    return total;
}

static void finish_stop(rtmd_server *srv)
{
    srv->stopping = 2;
    uv_timer_stop(&srv->stop_timer);
    for (rtmd_conn *c = srv->net.conns; c; c = c->next)
        conn_close(c, "server stopping");
    conn_finish_closes(&srv->net);
    if (srv->store) {
        store_close(srv->store);
        srv->store = NULL;
    }
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_close((uv_handle_t *)&srv->flusher, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->sigusr1, NULL);
    uv_close((uv_handle_t *)&srv->stop_timer, NULL);
    LOG_INFO("stopped");
}

/* Waits until the store has written everything queued and every
 * connection's output is written, or until the output stopped moving for
 * STOP_STALL_MS (readers that do not read), or until the drain limit; then
 * closes everything, naming what was dropped. */
static void on_stop_poll(uv_timer_t *t)
{
    rtmd_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    bool store_idle = !srv->store || store_pending(srv->store) == 0;
    size_t undrained;
    uint64_t undelivered = undelivered_output(srv, &undrained);
    if (undelivered != srv->stop_undelivered) {
        srv->stop_undelivered = undelivered;
        srv->stop_progress_ms = now;
    }
    /* The last poll that still ends before the limit is the last one. */
    bool late = now + STOP_POLL_MS - srv->stop_started_ms >= STOP_DRAIN_LIMIT_MS;
    bool stalled = now - srv->stop_progress_ms >= STOP_STALL_MS;
    if (!late && !(store_idle && (undrained == 0 || stalled)))
        return;
    if (!store_idle)
        LOG_WARN("stopping with %zu store writes still queued after %d ms", store_pending(srv->store),
                 STOP_DRAIN_LIMIT_MS);
    if (undrained > 0)
        LOG_WARN("stopping: dropped %zu connection(s) that could not drain, %llu bytes undelivered (%s after %llu ms)",
                 undrained, (unsigned long long)undelivered, late ? "drain limit reached" : "no output moved",
                 (unsigned long long)(now - srv->stop_started_ms));
    finish_stop(srv);
}

void rtmd_server_stop(rtmd_server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->net.refusing = true;
    srv->stop_started_ms = srv->stop_progress_ms = uv_now(srv->loop);
    srv->stop_undelivered = 0;
    LOG_INFO("stopping: no new connections or quests, finishing writes in flight");
    sd_notify(0, "STOPPING=1");
    close_listeners(srv);
    for (rtmd_conn *c = srv->net.conns; c; c = c->next)
        uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&srv->stop_timer, on_stop_poll, 0, STOP_POLL_MS);
}

/* SIGHUP, after the configuration (reload_config): loads the TLS
 * certificate and key again (new connections get the new context; open
 * ones keep the one they started with), then runs every module's reload
 * (services_reload: the sensitive-word lists). */
static void reload_tls(rtmd_server *srv)
{
    if (!srv->net.tls) {
        LOG_INFO("SIGHUP: no TLS certificate configured, nothing to reload");
        return;
    }
    char err[512];
    tls_context *fresh = tls_context_load(srv->cfg.tls_cert, srv->cfg.tls_key, err, sizeof err);
    if (!fresh) {
        LOG_ERROR("SIGHUP: keeping the current TLS certificate: %s", err);
        return;
    }
    tls_context_free(srv->net.tls);
    srv->net.tls = fresh;
    LOG_INFO("SIGHUP: TLS certificate reloaded from %s", srv->cfg.tls_cert);
}

void rtmd_server_reload_from(rtmd_server *srv, rtmd_config_source_fn fn, void *arg)
{
    srv->config_source = fn;
    srv->config_source_arg = arg;
}

/* One difference found by a reload, logged: applied, or kept until a
 * restart. */
static void log_change(void *arg, int64_t pid, const char *name, const char *from, const char *to, bool applied)
{
    (void)arg;
    char project[40] = "";
    if (pid)
        snprintf(project, sizeof project, "project %lld: ", (long long)pid);
    if (applied)
        LOG_INFO("SIGHUP: %s%s: %s -> %s, applied", project, name, from, to);
    else
        LOG_WARN("SIGHUP: %s%s: %s -> %s needs a restart; running with %s until then", project, name, from, to,
                 from);
}

/* A project a reload adds: recorded in the store (its rows refer to it),
 * then every module sets it up; any of them may refuse it. It takes the
 * slot the same pid had before a removal, or a new one: slots are never
 * freed while running (requests may point at them), so a run adds at
 * most RTMD_MAX_PROJECTS distinct projects. */
static int add_project(rtmd_server *srv, const rtmd_project_config *c, char *err, size_t errlen)
{
    rtmd_project *p = rtmd_server_project_slot(srv, c->pid); /* removed: sync_projects found no running one */
    bool fresh = !p;
    if (fresh) {
        if (srv->nprojects == RTMD_MAX_PROJECTS) {
            snprintf(err, errlen, "the %d project slots of this run are taken (removed projects keep theirs until "
                     "a restart)", RTMD_MAX_PROJECTS);
            return -1;
        }
        p = &srv->projects[srv->nprojects++];
        memset(p, 0, sizeof *p);
    }
    p->pid = c->pid;
    snprintf(p->secret, sizeof p->secret, "%s", c->secret);
    p->limits = *c;
    p->removed = false;
    if (store_ensure_project(srv->store, p->pid, p->secret) != 0)
        snprintf(err, errlen, "cannot record it in the store");
    else if (services_project_added(srv, p, err, errlen) == 0)
        return 0;
    p->removed = true;
    if (fresh)
        srv->nprojects--; /* nothing refers to it yet */
    return -1;
}

/* After a reload: the running projects follow the configuration's list
 * (when it names projects; rtmd_config_reload made it the file's). One
 * no longer named is removed (every module drops it; users.c closes its
 * sessions); one newly named is added, or taken out of the list again
 * with the reason logged when it cannot start; the others take their
 * new limits and secret. */
static void sync_projects(rtmd_server *srv)
{
    if (srv->cfg.nprojects == 0)
        return; /* the store's projects: no [project] configured */
    for (size_t i = 0; i < srv->nprojects; i++) {
        rtmd_project *p = &srv->projects[i];
        if (p->removed)
            continue;
        const rtmd_project_config *c = rtmd_config_project(&srv->cfg, p->pid);
        if (c) {
            p->limits = *c;
            snprintf(p->secret, sizeof p->secret, "%s", c->secret);
            continue;
        }
        p->removed = true;
        services_project_removed(srv, p);
        LOG_INFO("SIGHUP: project %lld removed; its data stays in the store", (long long)p->pid);
    }
    for (size_t i = 0; i < srv->cfg.nprojects;) {
        const rtmd_project_config *c = &srv->cfg.projects[i];
        char err[512] = "";
        if (rtmd_server_project(srv, c->pid)) {
            i++;
        } else if (add_project(srv, c, err, sizeof err) == 0) {
            LOG_INFO("SIGHUP: project %lld started", (long long)c->pid);
            i++;
        } else {
            LOG_ERROR("SIGHUP: project %lld not added: %s", (long long)c->pid, err);
            rtmd_config_drop_project(&srv->cfg, c->pid);
        }
    }
}

/* SIGHUP: the configuration read again as at start (config_source). A
 * configuration that does not load or check changes nothing (false: the
 * TLS files and the modules' files are not read again either); otherwise
 * every difference is logged and those that can change while running
 * take effect at once (rtmd_config_reload): the transport and the modules
 * read them where they use them, the projects' limits are copied into the
 * running projects, and the log's level, format and file follow. Every
 * connection stays. */
static bool reload_config(rtmd_server *srv)
{
    if (!srv->config_source)
        return true;
    rtmd_config *next = malloc(sizeof *next);
    char err[512];
    if (!next) {
        LOG_ERROR("SIGHUP: keeping the configuration: out of memory");
        return false;
    }
    if (srv->config_source(srv->config_source_arg, next, err, sizeof err) != 0) {
        LOG_ERROR("SIGHUP: configuration refused, nothing changed: %s", err);
        free(next);
        return false;
    }
    char old_log_file[sizeof srv->cfg.log_file];
    snprintf(old_log_file, sizeof old_log_file, "%s", srv->cfg.log_file);
    char old_cert[sizeof srv->cfg.tls_cert], old_key[sizeof srv->cfg.tls_key];
    snprintf(old_cert, sizeof old_cert, "%s", srv->cfg.tls_cert);
    snprintf(old_key, sizeof old_key, "%s", srv->cfg.tls_key);
    rtmd_config_reload(&srv->cfg, next, log_change, srv);
    free(next);
    /* The TLS files may move; TLS itself on or off takes its listeners. */
    if (!srv->cfg.tls_cert[0] != !old_cert[0]) {
        LOG_WARN("SIGHUP: TLS %s needs a restart (its listeners); keeping %s", old_cert[0] ? "off" : "on",
                 old_cert[0] ? old_cert : "TLS off");
        snprintf(srv->cfg.tls_cert, sizeof srv->cfg.tls_cert, "%s", old_cert);
        snprintf(srv->cfg.tls_key, sizeof srv->cfg.tls_key, "%s", old_key);
    }
    sync_projects(srv);
    srv->net.file_max_packet = rtmd_config_file_max_packet(&srv->cfg);
    rtm_log_set_level((enum rtm_log_level)srv->cfg.log_level);
    rtm_log_set_format((enum rtm_log_format)srv->cfg.log_format);
    if (strcmp(old_log_file, srv->cfg.log_file) != 0 && rtm_log_open(srv->cfg.log_file) != 0) {
        LOG_ERROR("SIGHUP: keeping the log file %s: cannot open %s: %s", old_log_file[0] ? old_log_file : "(stderr)",
                  srv->cfg.log_file, strerror(errno));
        snprintf(srv->cfg.log_file, sizeof srv->cfg.log_file, "%s", old_log_file);
    }
    LOG_INFO("SIGHUP: configuration read again");
    return true;
}

static void on_reload(uv_signal_t *h, int signum)
{
    (void)signum;
    rtmd_server *srv = h->data;
    sd_notify(0, "RELOADING=1");
    if (reload_config(srv)) { /* a refused configuration changes nothing */
        reload_tls(srv);
        services_reload(srv);
    }
    sd_notify(0, "READY=1");
}

/* SIGUSR1: the log file again under its name (after logrotate moved it). */
static void on_reopen_log(uv_signal_t *h, int signum)
{
    (void)signum;
    rtmd_server *srv = h->data;
    if (!srv->cfg.log_file[0]) {
        LOG_INFO("SIGUSR1: logging to standard error, nothing to reopen");
        return;
    }
    if (rtm_log_reopen() != 0) {
        LOG_ERROR("SIGUSR1: keeping the open log file: reopening %s failed: %s", srv->cfg.log_file, strerror(errno));
        return;
    }
    LOG_INFO("SIGUSR1: log file %s reopened", srv->cfg.log_file);
}

static void on_signal(uv_signal_t *h, int signum)
{
    rtmd_server *srv = h->data;
    if (srv->stopping) {
        LOG_WARN("second signal %d: exiting at once", signum);
        _exit(1);
    }
    LOG_INFO("signal %d received", signum);
    rtmd_server_stop(srv);
}

/* ---- life cycle ---- */

int rtmd_server_init(rtmd_server *srv, uv_loop_t *loop, const rtmd_config *cfg, char *err, size_t errlen)
{
    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->net.loop = loop;
    srv->net.cfg = &srv->cfg;
    srv->cfg = *cfg;
    if (cfg->key_pem[0]) {
        srv->net.key = fpnn_crypto_load_private_key(cfg->key_pem, err, errlen);
        if (!srv->net.key)
            return -1;
    }
    if (strcmp(cfg->store, "postgres") == 0)
        srv->store = store_open_postgres(loop, cfg->store_url, cfg->store_batch_max, err, errlen);
    else
        srv->store = store_open(loop, cfg->data_dir, cfg->store_batch_max, cfg->store_fsync != 0, err, errlen);
    if (!srv->store)
        return -1;
    store_set_patient_interval(srv->store, cfg->store_patient_interval_us);
    store_on_dispatched(srv->store, on_store_dispatched, srv);
    if (setup_projects(srv, err, errlen) != 0)
        return -1;
    srv->methods = methods_new();
    srv->http = calloc(1, sizeof *srv->http);
    if (!srv->methods || !srv->http) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->net.on_packet = rtmd_dispatch_packet;
    srv->net.on_oversized = rtmd_dispatch_oversized;
    srv->net.on_http = rtmd_http_handle;
    if (services_init(srv, err, errlen) != 0)
        return -1;
    if (http_register(srv->http, &metrics_route, 1) != 0) {
        snprintf(err, errlen, "too many HTTP routes");
        return -1;
    }

    if (cfg->tls_cert[0]) {
        srv->net.tls = tls_context_load(cfg->tls_cert, cfg->tls_key, err, errlen);
        if (!srv->net.tls)
            return -1;
    }
    const int ports[ENDPOINT_COUNT] = {
        [ENDPOINT_CLIENT_TCP] = cfg->client_tcp_port, [ENDPOINT_CLIENT_WS] = cfg->client_ws_port,
        [ENDPOINT_CLIENT_WSS] = cfg->client_wss_port, [ENDPOINT_SERVER_TCP] = cfg->server_tcp_port,
        [ENDPOINT_HTTP] = cfg->http_port,             [ENDPOINT_HTTPS] = cfg->https_port,
        [ENDPOINT_FILE_TCP] = cfg->file_tcp_port,     [ENDPOINT_FILE_WS] = cfg->file_ws_port,
        [ENDPOINT_FILE_WSS] = cfg->file_wss_port,
    };
    srv->net.file_max_packet = rtmd_config_file_max_packet(cfg);
    for (int e = 0; e < ENDPOINT_COUNT; e++)
        if (start_listener(srv, (rtmd_endpoint)e, ports[e], err, errlen) != 0)
            return -1;

    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    srv->net.sweep.ticks_per_pass = RTMD_HOUSEKEEPING_HZ;
    uv_timer_start(&srv->tick, on_tick, 1000 / RTMD_HOUSEKEEPING_HZ, 1000 / RTMD_HOUSEKEEPING_HZ);
    uv_check_init(loop, &srv->flusher);
    srv->flusher.data = srv;
    uv_check_start(&srv->flusher, on_check);
    uv_timer_init(loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_init(loop, &srv->sighup);
    srv->sighup.data = srv;
    uv_signal_start(&srv->sighup, on_reload, SIGHUP);
    uv_signal_init(loop, &srv->sigusr1);
    srv->sigusr1.data = srv;
    uv_signal_start(&srv->sigusr1, on_reopen_log, SIGUSR1);
    return 0;
}

void rtmd_server_print_ready(rtmd_server *srv)
{
    const char *host = srv->cfg.listen_host;
    for (int e = 0; e < ENDPOINT_COUNT; e++) {
        const rtmd_listener *l = &srv->listeners[e];
        if (!l->active)
            continue;
        printf("listen %s %s:%d", l->name, host, l->port);
        if (GATE_IS_WS(l->gate))
            printf(" path=%s", srv->cfg.ws_path);
        printf("\n");
    }
    /* The secrets of configured projects are in the operator's file: the
     * banner (the journal, under systemd) names the projects only. The
     * store's demo project has its secret and derived keys nowhere the
     * user can read them but here. */
    bool secrets = srv->cfg.nprojects == 0;
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        printf("project pid=%lld%s%s\n", (long long)p->pid, secrets ? " secret=" : "", secrets ? p->secret : "");
    }
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project_config *l = &srv->projects[i].limits;
        if (l->app_id[0])
            printf("rts pid=%lld app_id=%s%s%s\n", (long long)l->pid, l->app_id, secrets ? " app_key=" : "",
                   secrets ? l->app_key : "");
    }
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project_config *l = &srv->projects[i].limits;
        if (l->rtcat_apikey[0])
            printf("rtcat pid=%lld apikey=%s%s%s\n", (long long)l->pid, l->rtcat_apikey, secrets ? " secret=" : "",
                   secrets ? l->rtcat_secret : "");
    }
    printf("rtmd %s ready\n", RTMD_VERSION);
    fflush(stdout);
    /* Under systemd (Type=notify) the unit is started from here on. */
    sd_notify(0, "READY=1");
}

int rtmd_server_run(rtmd_server *srv)
{
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return srv->exit_code;
}

void rtmd_server_free(rtmd_server *srv)
{
    services_free(srv);
    conn_free_address_counts(&srv->net);
    if (srv->store) {
        store_close(srv->store);
        srv->store = NULL;
    }
    methods_free(srv->methods);
    free(srv->http);
    free(srv->projects);
    rtm_buf_free(&srv->net.scratch);
    rtm_buf_free(&srv->net.push_scratch);
    rtm_buf_free(&srv->net.decrypted);
    rtm_buf_free(&srv->net.tls_plain);
    free(srv->net.closing);
    EVP_PKEY_free(srv->net.key);
    tls_context_free(srv->net.tls);
}
