/* The HTTP listener's routes: `GET /healthz` (liveness as JSON) and
 * `GET /metrics` (Prometheus text format: connections per gate, packets,
 * bytes, drops). Later features (REST API, demo endpoints, web pages) add
 * their routes here. */
#include "server.h"

#include <stdio.h>
#include <string.h>

static void respond(rtmd_conn *c, int status, const char *reason, const char *type, const char *body, size_t len,
                    bool keep_alive)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n", status,
                     reason, type, len, keep_alive ? "keep-alive" : "close");
    if (conn_send_raw(c, head, (size_t)n) == 0)
        conn_send_raw(c, body, len);
}

static size_t format_metrics(const rtmd_server *srv, char *out, size_t cap)
{
    const rtmd_metrics *m = &srv->metrics;
    size_t n = 0;
#define EMIT(...)                                                                                                  \
    do {                                                                                                           \
        if (n < cap)                                                                                               \
            n += (size_t)snprintf(out + n, cap - n, __VA_ARGS__);                                                  \
    } while (0)
    EMIT("# HELP rtmd_connections Open connections per gate.\n# TYPE rtmd_connections gauge\n");
    for (int g = 0; g < GATE_COUNT; g++)
        EMIT("rtmd_connections{gate=\"%s\"} %llu\n", rtmd_gate_name((rtmd_gate)g), (unsigned long long)m->current[g]);
    EMIT("# HELP rtmd_connections_accepted_total Connections accepted per gate.\n"
         "# TYPE rtmd_connections_accepted_total counter\n");
    for (int g = 0; g < GATE_COUNT; g++)
        EMIT("rtmd_connections_accepted_total{gate=\"%s\"} %llu\n", rtmd_gate_name((rtmd_gate)g),
             (unsigned long long)m->accepted[g]);
    EMIT("# HELP rtmd_connections_closed_total Connections closed per gate.\n"
         "# TYPE rtmd_connections_closed_total counter\n");
    for (int g = 0; g < GATE_COUNT; g++)
        EMIT("rtmd_connections_closed_total{gate=\"%s\"} %llu\n", rtmd_gate_name((rtmd_gate)g),
             (unsigned long long)m->closed[g]);
    EMIT("# HELP rtmd_connections_refused_total Connections refused over max_connections.\n"
         "# TYPE rtmd_connections_refused_total counter\n");
    for (int g = 0; g < GATE_COUNT; g++)
        EMIT("rtmd_connections_refused_total{gate=\"%s\"} %llu\n", rtmd_gate_name((rtmd_gate)g),
             (unsigned long long)m->refused[g]);
    EMIT("# HELP rtmd_packets_received_total Packets (and HTTP requests) received.\n"
         "# TYPE rtmd_packets_received_total counter\nrtmd_packets_received_total %llu\n",
         (unsigned long long)m->packets_in);
    EMIT("# HELP rtmd_packets_sent_total FPNN packets sent.\n"
         "# TYPE rtmd_packets_sent_total counter\nrtmd_packets_sent_total %llu\n",
         (unsigned long long)m->packets_out);
    EMIT("# HELP rtmd_bytes_received_total Bytes read from sockets.\n"
         "# TYPE rtmd_bytes_received_total counter\nrtmd_bytes_received_total %llu\n",
         (unsigned long long)m->bytes_in);
    EMIT("# HELP rtmd_bytes_sent_total Bytes handed to sockets.\n"
         "# TYPE rtmd_bytes_sent_total counter\nrtmd_bytes_sent_total %llu\n",
         (unsigned long long)m->bytes_out);
    EMIT("# HELP rtmd_protocol_errors_total Connections closed for malformed input.\n"
         "# TYPE rtmd_protocol_errors_total counter\nrtmd_protocol_errors_total %llu\n",
         (unsigned long long)m->protocol_errors);
    EMIT("# HELP rtmd_slow_consumers_total Connections dropped for an output queue over the limit.\n"
         "# TYPE rtmd_slow_consumers_total counter\nrtmd_slow_consumers_total %llu\n",
         (unsigned long long)m->slow_consumers);
    EMIT("# HELP rtmd_timeouts_total Connections closed by handshake or idle timeout.\n"
         "# TYPE rtmd_timeouts_total counter\nrtmd_timeouts_total %llu\n",
         (unsigned long long)m->timeouts);
    EMIT("# HELP rtmd_store_pending Writes queued for the store.\n"
         "# TYPE rtmd_store_pending gauge\nrtmd_store_pending %zu\n",
         srv->store ? store_pending(srv->store) : (size_t)0);
#undef EMIT
    return n < cap ? n : cap;
}

void rtmd_http_handle(rtmd_conn *c, const http_request *req)
{
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (strcmp(req->path, "/healthz") == 0 && get) {
        const char *body = c->srv->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}";
        respond(c, c->srv->stopping ? 503 : 200, c->srv->stopping ? "Service Unavailable" : "OK",
                "application/json", body, strlen(body), req->keep_alive);
        return;
    }
    if (strcmp(req->path, "/metrics") == 0 && get) {
        char body[8192];
        size_t n = format_metrics(c->srv, body, sizeof body);
        respond(c, 200, "OK", "text/plain; version=0.0.4", body, n, req->keep_alive);
        return;
    }
    const char *body = "{\"error\":\"not_found\",\"description\":\"no such resource\"}";
    respond(c, 404, "Not Found", "application/json", body, strlen(body), req->keep_alive);
}
