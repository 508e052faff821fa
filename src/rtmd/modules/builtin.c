/* Built-in FPNN methods every gate answers: keepalive (`ping`, `*ping`),
 * the orderly goodbye (`bye`), and diagnostics (`*echo` returns its
 * arguments unchanged, `*infos` describes the server: version,
 * connections per gate and the methods each gate serves); and on the HTTP
 * gate `GET /healthz`. */
#include "http.h"
#include "methods.h"
#include "payload.h"
#include "module.h"
#include "users.h"

#include <string.h>

static void method_ping(rtmd_request *req)
{
    request_answer_empty(req);
}

static void method_bye(rtmd_request *req)
{
    rtmd_conn *c = req->conn;
    users_said_bye(c); /* the session's end is a quit, not a drop */
    request_answer_empty(req);
    conn_close_after_flush(c);
}

static void method_echo(rtmd_request *req)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *req->args);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static void method_infos(rtmd_request *req)
{
    rtmd_server *srv = req->srv;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_str(&pk, "server", "rtmd");
    mp_pack_kv_str(&pk, "version", RTMD_VERSION);
    mp_pack_cstr(&pk, "connections");
    msgpack_pack_map(&pk, GATE_COUNT);
    for (int g = 0; g < GATE_COUNT; g++)
        mp_pack_kv_int(&pk, rtmd_gate_name((rtmd_gate)g), (int64_t)srv->net.metrics.current[g]);
    mp_pack_cstr(&pk, "methods");
    methods_pack_list(srv->methods, &pk);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static const rtmd_method builtin_methods[] = {
    {"ping", GATES_FPNN, method_ping, RTMD_M_OPEN},
    {"*ping", GATES_FPNN, method_ping, RTMD_M_OPEN},
    {"bye", GATES_FPNN, method_bye, RTMD_M_OPEN},
    {"*echo", GATES_FPNN, method_echo, RTMD_M_OPEN},
    {"*infos", GATES_FPNN, method_infos, RTMD_M_OPEN},
};

/* `GET /healthz`: liveness as JSON, 503 while a graceful stop drains. */
static void route_healthz(rtmd_conn *c, const http_request *req)
{
    const char *body = c->srv->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}";
    http_respond(c, req, c->srv->stopping ? 503 : 200, "application/json", body, strlen(body));
}

static const rtmd_http_route builtin_routes[] = {{"GET", "/healthz", route_healthz}};

/* A module without state or events. */
const rtmd_module builtin_module = {.name = "builtin", RTMD_MODULE_METHODS(builtin_methods),
                                    RTMD_MODULE_ROUTES(builtin_routes)};
