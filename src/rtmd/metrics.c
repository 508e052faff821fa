/* `GET /metrics` on the HTTP gate, in the Prometheus text format: the
 * transport's counters (connections per gate, packets, bytes, drops), the
 * store's queue and WAL checkpoints, every module's own lines
 * (services_metrics) and the per-stage histograms of the message path
 * (lathist.h). */
#include "metrics.h"

#include "http.h"
#include "lathist.h"
#include "prom.h"
#include "services.h"
#include "users.h"

#include <stdlib.h>

static void emit_per_gate(prom_out *o, const char *name, const char *type, const char *help, const uint64_t *values)
{
    const char *gates[GATE_COUNT];
    for (int g = 0; g < GATE_COUNT; g++)
        gates[g] = rtmd_gate_name((rtmd_gate)g);
    prom_labelled(o, name, type, help, "gate", gates, values, GATE_COUNT);
}

static size_t format_metrics(const rtmd_server *srv, char *buf, size_t cap)
{
    const rtmd_metrics *m = &srv->net.metrics;
    prom_out o = {buf, cap, 0};
    emit_per_gate(&o, "rtmd_connections", "gauge", "Open connections per gate.", m->current);
    emit_per_gate(&o, "rtmd_connections_accepted_total", "counter", "Connections accepted per gate.", m->accepted);
    emit_per_gate(&o, "rtmd_connections_closed_total", "counter", "Connections closed per gate.", m->closed);
    emit_per_gate(&o, "rtmd_connections_refused_total", "counter", "Connections refused over a connection budget (per gate, per address) or while stopping.",
                  m->refused);
    prom_metric(&o, "rtmd_packets_received_total", "counter", "Packets (and HTTP requests) received.", m->packets_in);
    prom_metric(&o, "rtmd_packets_sent_total", "counter", "FPNN packets sent.", m->packets_out);
    prom_metric(&o, "rtmd_bytes_received_total", "counter", "Bytes read from sockets.", m->bytes_in);
    prom_metric(&o, "rtmd_bytes_sent_total", "counter", "Bytes handed to sockets.", m->bytes_out);
    prom_metric(&o, "rtmd_protocol_errors_total", "counter", "Connections closed for malformed input.",
             m->protocol_errors);
    prom_metric(&o, "rtmd_slow_consumers_total", "counter", "Connections dropped for an output queue over the limit.",
             m->slow_consumers);
    prom_metric(&o, "rtmd_timeouts_total", "counter", "Connections closed by handshake, login or idle timeout.", m->timeouts);
    prom_metric(&o, "rtmd_store_pending", "gauge", "Writes queued for the store.",
             srv->store ? store_pending(srv->store) : 0);
    if (srv->store && !store_is_postgres(srv->store)) {
        store_wal_stats w;
        store_wal_stats_get(srv->store, &w);
        static const char *const by[] = {"checkpointer", "writer"};
        const uint64_t runs[] = {w.checkpoints_thread, w.checkpoints_writer};
        prom_labelled(&o, "rtmd_store_checkpoints_total", "counter",
                      "SQLite WAL checkpoints, by the checkpointer thread or by the writer (to restart the WAL).", "by",
                      by, runs, 2);
        prom_metric(&o, "rtmd_store_checkpoint_frames_total", "counter",
                    "WAL frames copied into the database by checkpoints.", w.frames_checkpointed);
        prom_metric(&o, "rtmd_store_wal_restarts_total", "counter",
                    "Times the SQLite WAL started again from its beginning.", w.restarts);
        prom_metric(&o, "rtmd_store_wal_frames", "gauge", "Frames in the SQLite WAL after the writer's last commit.",
                    w.wal_frames);
    }
    uint64_t buffered = 0;
    for (const rtmd_conn *c = srv->net.conns; c; c = c->next)
        if (c->gate != GATE_HTTP)
            buffered += conn_buffer_bytes(c);
    prom_metric(&o, "rtmd_connection_buffer_bytes", "gauge",
             "Heap bytes held in buffers by client and server gate connections.", buffered);
    prom_metric(&o, "rtmd_prelogin_buffer_bytes", "gauge",
             "Input buffer bytes of links not logged in or signed yet (bounded by prelogin_buffer_budget).",
             srv->net.prelogin_bytes);
    static const char *const results[LOGIN_RESULTS] = {"ok", "denied", "error"};
    prom_labelled(&o, "rtmd_logins_total", "counter",
                  "Client logins (auth) answered: granted, refused (bad token) or an error.", "result", results,
                  m->logins, LOGIN_RESULTS);
    prom_metric(&o, "rtmd_sessions", "gauge", "Logged-in client sessions on this node.", users_count((rtmd_server *)srv));
    prom_metric(&o, "rtmd_projects", "gauge", "Projects served.", rtmd_server_running_projects(srv));
    if (srv->store && !store_is_postgres(srv->store))
        prom_metric(&o, "rtmd_store_bytes", "gauge", "Bytes of the SQLite store on disk (database and WAL).",
                    (uint64_t)store_disk_bytes(srv->store));
    services_metrics(srv, &o);
    lat_prom(&o);
    return o.len < cap ? o.len : cap;
}

/* Room for every line: the fixed ones take a few KiB, a labelled metric
 * with a bounded label set (rtmd_rts_logins_total: 101 labels of at most
 * 128 bytes, escaped) some 30 KiB more. */
#define METRICS_BODY_MAX (128 * 1024)

static void route_metrics(rtmd_conn *c, const http_request *req)
{
    char *body = malloc(METRICS_BODY_MAX);
    if (!body) {
        http_respond(c, req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    size_t n = format_metrics(c->srv, body, METRICS_BODY_MAX);
    http_respond(c, req, 200, "text/plain; version=0.0.4", body, n);
    free(body);
}

const rtmd_http_route metrics_route = {"GET", "/metrics", route_metrics};
